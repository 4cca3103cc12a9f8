"""National portal (DVCQG) contract (issue 9 §2, docs/contracts.md §5): HinhThuc, madonvi and MaDoiTuong, the
adapter and the bundled portal_dossier mapping against a sandbox portal answering the real way."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from lienthong.adapters.http import HttpPeer, make_transport
from lienthong.adapters.portal import PortalAdapter, PortalCredentials
from lienthong.config import PortalDestination
from lienthong.errors import PermanentError
from lienthong.model import Message, StoredEvent
from lienthong.sandbox import PortalSandbox
from lienthong.sandbox.dossiers import PROCEDURE_CODES, generate
from lienthong.serving import ThreadedServer
from test_adapters import MAPPINGS

MADONVI = "000.00.00.H56"


@pytest.fixture
def portal() -> Iterator[tuple[PortalSandbox, str]]:
    peer = PortalSandbox(procedures=PROCEDURE_CODES, madonvi=MADONVI)
    with ThreadedServer(lambda: peer) as server:
        yield peer, server.url


def adapter(url: str, peer: PortalSandbox, madonvi: str | None = MADONVI) -> PortalAdapter:
    credentials = PortalCredentials(peer.dstcode, peer.username, peer.password, madonvi=madonvi)
    return PortalAdapter("portal", HttpPeer(url, make_transport(max_connections=2), timeout_s=2), credentials)


def dossier_event(index: int, **applicant: Any) -> tuple[Message, dict[str, Any]]:
    """The first event of generated dossier ``index``, with ``applicant`` fields changed, and its mapped item."""
    event = generate(index + 1)[index].events[0]
    dossier = copy.deepcopy(event["dossier"])
    dossier["applicant"].update(applicant)
    stored = StoredEvent(event["event_id"], event["type"], event["unit_code"], event["occurred_at"], dossier)
    delivery = Message(f"m-{index}", "portal", "DongBoHoSoMC", dossier["code"], 0, 0, stored)
    item: dict[str, Any] = MAPPINGS["DongBoHoSoMC"]({**event, "dossier": dossier})
    return delivery, item


def with_channel(index: int, channel: str) -> tuple[Message, dict[str, Any]]:
    delivery, _ = dossier_event(index)
    dossier = {**delivery.event.dossier, "channel": channel}
    event = replace(delivery.event, dossier=dossier)
    record = {"event_id": event.event_id, "occurred_at": event.occurred_at, "dossier": dossier}
    return replace(delivery, event=event), MAPPINGS["DongBoHoSoMC"](record)


# -- HinhThuc: "0" direct, "1" postal ------------------------------------------------------------------------


@pytest.mark.parametrize(("channel", "code"), [("in_person", "0"), ("online", "0"), ("postal", "1")])
async def test_hinh_thuc_is_0_direct_or_1_postal(
    portal: tuple[PortalSandbox, str], channel: str, code: str
) -> None:
    peer, url = portal
    delivery, item = with_channel(0, channel)
    assert item["HinhThuc"] == code
    client = adapter(url, peer)
    await client.deliver(delivery, item)
    await client.aclose()
    assert peer.dossiers[delivery.dossier_code]["HinhThuc"] == code


@pytest.mark.parametrize("code", ["2", "3", 1])
async def test_the_sandbox_refuses_hinh_thuc_outside_the_table(
    portal: tuple[PortalSandbox, str], code: Any
) -> None:
    peer, url = portal
    delivery, item = dossier_event(0)
    item["HinhThuc"] = code
    client = adapter(url, peer)
    with pytest.raises(PermanentError, match="HinhThuc: must be 0 or 1") as caught:
        await client.deliver(delivery, item)
    await client.aclose()
    assert caught.value.remote_code == "400"
    assert not peer.dossiers


# -- madonvi: one configured value per connection -------------------------------------------------------------


async def test_every_call_carries_the_connections_madonvi_whatever_the_events_unit(
    portal: tuple[PortalSandbox, str],
) -> None:
    peer, url = portal
    events = [dossier_event(i) for i in range(6)]
    assert len({d.event.unit_code for d, _ in events}) > 1
    client = adapter(url, peer)
    for delivery, item in events:
        await client.deliver(delivery, item)
    await client.aclose()
    assert len(peer.dossiers) == 6


async def test_another_madonvi_is_refused_in_the_portals_reply_shape(
    portal: tuple[PortalSandbox, str],
) -> None:
    peer, url = portal
    delivery, item = dossier_event(0)
    client = adapter(url, peer, madonvi=None)  # unset: the event's own unit code
    with pytest.raises(PermanentError, match="madonvi '000.*' không thuộc kết nối này") as caught:
        await client.deliver(delivery, item)
    await client.aclose()
    assert caught.value.remote_code == "403"
    async with httpx.AsyncClient(base_url=url) as raw:
        login = await raw.post(
            "/api/auth/login",
            json={"username": peer.username, "password": peer.password},
            headers={"dstcode": peer.dstcode},
        )
        answer = await raw.post(
            "/api/service",
            json={
                "session": login.json()["session"],
                "madonvi": "H99",
                "service": "TraCuuHoSo",
                "mahoso": "x",
            },
            headers={"dstcode": peer.dstcode},
        )
    assert set(answer.json()) == {"error_code", "message", "result"}
    assert answer.json()["error_code"] == "403"


def test_madonvi_is_a_destination_key() -> None:
    dest = PortalDestination.model_validate(
        {
            "kind": "portal",
            "base_url": "https://dvcqg.example.vn",
            "dstcode": "D1",
            "username": "u",
            "password": "p",
            "madonvi": MADONVI,
        }
    )
    assert dest.madonvi == MADONVI


# -- MaDoiTuong: the portal's own applicant id, else empty; never the ID number ----------------------------


async def test_ma_doi_tuong_is_the_portals_applicant_id_when_known(portal: tuple[PortalSandbox, str]) -> None:
    peer, url = portal
    known, known_item = dossier_event(0, portal_id="8437215")
    unknown, unknown_item = dossier_event(1)
    assert (known_item["MaDoiTuong"], unknown_item["MaDoiTuong"]) == ("8437215", "")
    id_number = unknown.event.dossier["applicant"]["id_number"]
    assert id_number not in unknown_item.values()
    client = adapter(url, peer)
    await client.deliver(known, known_item)
    await client.deliver(unknown, unknown_item)
    await client.aclose()
    assert peer.dossiers[known.dossier_code]["MaDoiTuong"] == "8437215"
    assert peer.dossiers[unknown.dossier_code]["MaDoiTuong"] == ""


async def test_the_sandbox_refuses_the_citizens_id_number_as_ma_doi_tuong(
    portal: tuple[PortalSandbox, str],
) -> None:
    peer, url = portal
    delivery, item = dossier_event(0)
    item["MaDoiTuong"] = delivery.event.dossier["applicant"]["id_number"]
    assert len(item["MaDoiTuong"]) == 12
    client = adapter(url, peer)
    with pytest.raises(PermanentError, match="not a citizen ID number") as caught:
        await client.deliver(delivery, item)
    await client.aclose()
    assert caught.value.remote_code == "400"
    assert not peer.dossiers
