"""EMC contract (issue 9 §2, docs/contracts.md §4): the ``User`` string against the sandbox, and the reading of
replies whose body EMC never published (through MockTransport, since no sandbox can know them)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import orjson
import pytest

from conftest import Peers
from lienthong.adapters.emc import EmcAdapter, EmcReplyRules
from lienthong.adapters.http import HttpPeer, make_transport
from lienthong.errors import PermanentError, RetryableError
from lienthong.sandbox import EmcSandbox
from lienthong.serving import ThreadedServer
from test_adapters import MAPPINGS, claimed, send


def adapter(url: str) -> EmcAdapter:
    return EmcAdapter("emc", HttpPeer(url, make_transport(max_connections=2), timeout_s=2))


def tracking(id_number: str | None = None) -> dict[str, Any]:
    delivery = claimed(0, "TrackingMCDT")
    event = delivery.event
    dossier = copy.deepcopy(event.dossier)
    if id_number is not None:
        dossier["applicant"]["id_number"] = id_number
    record = {"event_id": event.event_id, "occurred_at": event.occurred_at, "dossier": dossier}
    body: dict[str, Any] = MAPPINGS["TrackingMCDT"](
        record, params={"site_id": "SANDBOX-SITE", "province_code": "H56"}
    )
    return body


@pytest.mark.parametrize(("id_number", "kind"), [("001204012345", "2"), ("3300123456", "1")])
async def test_user_is_a_json_string_with_ids_type_and_location(id_number: str, kind: str) -> None:
    peer = EmcSandbox(province_code="H56")
    with ThreadedServer(lambda: peer) as server:
        emc = adapter(server.url)
        await emc.deliver(claimed(0, "TrackingMCDT"), tracking(id_number))
        await emc.aclose()
    (record,) = peer.received
    assert isinstance(record.body["User"], str)
    assert orjson.loads(record.body["User"]) == {
        "ID_local": id_number,
        "ID_QG": id_number,
        "TYPE": kind,
        "LOCATION": "H56",
    }


@pytest.mark.parametrize(
    ("user", "problem"),
    [
        ({"SoDinhDanh": "001204012345", "LoaiDoiTuong": 1, "MaTinh": "H56"}, "must hold exactly"),
        (
            {"ID_local": "3300123456", "ID_QG": "3300123456", "TYPE": "2", "LOCATION": "H56"},
            "TYPE must be '1'",
        ),
        ({"ID_local": "001204012345", "ID_QG": "001204012345", "TYPE": "2", "LOCATION": "H01"}, "LOCATION"),
    ],
)
async def test_the_sandbox_refuses_another_user_shape(user: dict[str, Any], problem: str) -> None:
    peer = EmcSandbox(province_code="H56")
    body = tracking()
    body["User"] = orjson.dumps(user).decode()
    with ThreadedServer(lambda: peer) as server:
        emc = adapter(server.url)
        with pytest.raises(PermanentError, match=problem) as caught:
            await emc.deliver(claimed(0, "TrackingMCDT"), body)
        await emc.aclose()
    assert caught.value.remote_code == "400"
    assert not peer.received


async def test_a_sandbox_refusal_in_a_2xx_is_permanent(peers: Peers) -> None:
    emc = adapter(peers.emc_url)
    with pytest.raises(PermanentError, match="SiteId 'ELSEWHERE' is not registered") as caught:
        await send(emc, claimed(0, "TrackingMCDT"), site_id="ELSEWHERE")
    assert (caught.value.status, caught.value.remote_code) == (200, "400")
    await emc.aclose()


def answering(status: int, body: bytes, content_type: str | None) -> EmcAdapter:
    headers = {"content-type": content_type} if content_type else {}
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body, headers=headers))
    return EmcAdapter("emc", HttpPeer("http://emc.test", transport, timeout_s=1))


JSON = "application/json"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", None),
        (b"OK", "text/plain"),
        (b'"Success"', JSON),
        (b"true", JSON),
        (b'{"error_code": 0, "message": "OK"}', JSON),
        (b'{"ErrorCode": "00"}', JSON),
        (b'{"errorCode": null, "message": "Thanh cong"}', JSON),
        (b'{"status": "ok", "data": []}', JSON),
        (b'{"success": true}', JSON),
        (b'{"message": "Success"}', JSON),
    ],
)
async def test_a_2xx_is_success_unless_it_says_otherwise(body: bytes, content_type: str | None) -> None:
    emc = answering(200, body, content_type)
    receipt = await emc.deliver(claimed(0, "TrackingMCDT"), tracking())
    assert receipt.http_status == 200
    await emc.aclose()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"error_code": "1", "message": "Sai SiteId"}', "1"),
        (b'{"ErrorCode": 1, "Message": "Sai SiteId"}', "1"),
        (b'{"errorCode": "E01", "description": "Sai SiteId"}', "E01"),
        (b'{"status": "error", "message": "Sai SiteId"}', "error"),
        (b'{"Status": "FAILED", "message": "Sai SiteId"}', "FAILED"),
        (b'{"IsSuccess": false, "message": "Sai SiteId"}', "issuccess=false"),
    ],
)
async def test_a_2xx_with_an_explicit_error_is_a_refusal(body: bytes, code: str) -> None:
    emc = answering(200, body, JSON)
    with pytest.raises(PermanentError, match="EMC refused the event: Sai SiteId") as caught:
        await emc.deliver(claimed(0, "TrackingMCDT"), tracking())
    assert caught.value.remote_code == code
    await emc.aclose()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>Gateway maintenance</body></html>", "text/html"),
        (b"<html>no content type</html>", None),
        (b'{"error_code": 0, "message": "O', JSON),
    ],
)
async def test_a_gateway_page_or_a_cut_answer_is_retried(body: bytes, content_type: str | None) -> None:
    emc = answering(200, body, content_type)
    with pytest.raises(RetryableError, match="answer is not JSON"):
        await emc.deliver(claimed(0, "TrackingMCDT"), tracking())
    await emc.aclose()


async def test_the_reply_rules_are_adjustable() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"MaLoi": "99"}))
    rules = EmcReplyRules(error_code_keys=frozenset({"maloi"}))
    emc = EmcAdapter("emc", HttpPeer("http://emc.test", transport, timeout_s=1), rules=rules)
    with pytest.raises(PermanentError) as caught:
        await emc.deliver(claimed(0, "TrackingMCDT"), tracking())
    assert caught.value.remote_code == "99"
    await emc.aclose()
