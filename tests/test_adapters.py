"""Adapters against their sandbox peers: contracts, sessions, and every failure class mapped to our errors."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import aiohttp
import httpx
import pytest

from conftest import Peers
from lienthong.adapters.base import Adapter, Receipt, map_transport_errors
from lienthong.adapters.emc import EmcAdapter
from lienthong.adapters.http import HttpPeer, make_transport
from lienthong.adapters.portal import PortalAdapter, PortalCredentials
from lienthong.errors import DeliveryError, PermanentError, RetryableError
from lienthong.mappings import SpecLoader
from lienthong.model import Message, StoredEvent
from lienthong.sandbox import FaultPlan
from lienthong.sandbox.dossiers import generate
from lienthong.serving import bind


def claimed(event_index: int = 0, operation: str = "DongBoHoSoMC", dossier: int = 0) -> Message:
    event = generate(dossier + 1)[dossier].events[event_index]
    stored = StoredEvent(
        event["event_id"], event["type"], event["unit_code"], event["occurred_at"], event["dossier"]
    )
    return Message(
        f"m-test-{event_index}-{operation}", "portal", operation, event["dossier"]["code"], 0, 0, stored
    )


MAPPINGS = {
    "DongBoHoSoMC": SpecLoader().load("bundled:portal_dossier"),
    "CapNhatTienDoHoSoMC": SpecLoader().load("bundled:portal_progress"),
    "TrackingMCDT": SpecLoader().load("bundled:emc_tracking"),
}


async def send(adapter: Adapter, delivery: Message, site_id: str = "SANDBOX-SITE") -> Receipt:
    """Map the delivery's event with the bundled mapping of its operation, then deliver it."""
    event = delivery.event
    record = {
        "event_id": event.event_id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "unit_code": event.unit_code,
        "dossier": event.dossier,
    }
    body = MAPPINGS[delivery.operation](record, params={"site_id": site_id, "province_code": "H56"})
    return await adapter.deliver(delivery, body)


def credentials(peers: Peers, password: str | None = None) -> PortalCredentials:
    return PortalCredentials(peers.portal.dstcode, peers.portal.username, password or peers.portal.password)


@pytest.fixture
async def portal(peers: Peers) -> AsyncIterator[PortalAdapter]:
    adapter = PortalAdapter(
        "portal",
        HttpPeer(peers.portal_url, make_transport(max_connections=4), timeout_s=2),
        credentials(peers),
    )
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def emc(peers: Peers) -> AsyncIterator[EmcAdapter]:
    peer = HttpPeer(peers.emc_url, make_transport(max_connections=4), timeout_s=0.3)
    adapter = EmcAdapter("emc", peer)
    yield adapter
    await adapter.aclose()


async def test_a_new_dossier_is_created_then_updated_then_gets_progress(
    portal: PortalAdapter, peers: Peers
) -> None:
    await send(portal, claimed(0))
    await send(portal, claimed(2))  # result issued: an update
    await send(portal, claimed(1, "CapNhatTienDoHoSoMC"))
    code = claimed(0).dossier_code
    assert peers.portal.dossiers[code]["TrangThaiHoSo"] == "9"
    assert peers.portal.progress[code][0]["NoiDungXuLy"] == "Thụ lý, thẩm định hồ sơ"
    assert [r.key for r in peers.portal.received] == [
        claimed(0).message_id,
        claimed(2).message_id,
        claimed(1, "CapNhatTienDoHoSoMC").message_id,
    ]
    assert peers.portal.logins == 1


async def test_a_dossier_already_on_the_portal_is_updated_not_created(
    portal: PortalAdapter, peers: Peers
) -> None:
    delivery = claimed(0)
    peers.portal.dossiers[delivery.dossier_code] = {
        "MaHoSo": delivery.dossier_code
    }  # synced by another system
    await send(portal, delivery)
    assert peers.portal.dossiers[delivery.dossier_code]["TrangThaiHoSo"] == "1"


async def test_an_expired_session_is_renewed_once(portal: PortalAdapter, peers: Peers) -> None:
    await send(portal, claimed(0))
    peers.portal.expire_sessions()
    await send(portal, claimed(2))
    assert peers.portal.logins == 2


async def test_concurrent_calls_on_an_expired_session_log_in_once_more(
    portal: PortalAdapter, peers: Peers
) -> None:
    await send(portal, claimed(0))
    peers.portal.expire_sessions()
    syncs = [replace(claimed(0, dossier=n), message_id=f"m-test-{n}") for n in range(1, 7)]
    await asyncio.gather(*(send(portal, sync) for sync in syncs))
    assert peers.portal.logins == 2  # one new session for all six, whichever was refused first
    assert len(peers.portal.dossiers) == 7


async def test_wrong_credentials_are_a_permanent_error(peers: Peers) -> None:
    adapter = PortalAdapter(
        "portal",
        HttpPeer(peers.portal_url, make_transport(max_connections=1), timeout_s=2),
        credentials(peers, "wrong"),
    )
    with pytest.raises(PermanentError, match="portal login refused"):
        await send(adapter, claimed(0))
    await adapter.aclose()


async def test_a_business_rejection_is_permanent_with_the_remote_code(portal: PortalAdapter) -> None:
    with pytest.raises(PermanentError) as caught:
        await send(portal, claimed(1, "CapNhatTienDoHoSoMC"))  # progress for a dossier the portal lacks
    assert caught.value.remote_code == "409"
    assert "không tồn tại" in caught.value.message


async def test_emc_accepts_a_tracking_record(emc: EmcAdapter, peers: Peers) -> None:
    receipt = await send(emc, claimed(0, "TrackingMCDT"))
    assert receipt.http_status == 200
    (record,) = peers.emc.received
    assert record.body["Status"] == 1
    assert record.body["SiteId"] == "SANDBOX-SITE"


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        ("error", 503, "http 503"),
        ("throttle", 429, "http 429"),
        ("drop", None, "cannot reach the service"),
    ],
)
async def test_peer_faults_are_retryable(
    emc: EmcAdapter, peers: Peers, fault: str, status: int | None, message: str
) -> None:
    peers.emc.inject(fault)  # type: ignore[arg-type]
    with pytest.raises(RetryableError, match=message) as caught:
        await send(emc, claimed(0, "TrackingMCDT"))
    assert caught.value.status == status


async def test_a_throttle_carries_the_peers_retry_after(emc: EmcAdapter, peers: Peers) -> None:
    peers.emc.set_faults(FaultPlan(retry_after_s=7))
    peers.emc.inject("throttle")
    with pytest.raises(RetryableError) as caught:
        await send(emc, claimed(0, "TrackingMCDT"))
    assert caught.value.retry_after_s == 7


async def test_a_slow_peer_is_a_retryable_timeout(emc: EmcAdapter, peers: Peers) -> None:
    peers.emc.set_faults(FaultPlan(latency_ms=1000))
    peers.emc.inject("latency")
    with pytest.raises(RetryableError, match="did not answer in time|cannot reach the service"):
        await send(emc, claimed(0, "TrackingMCDT"))


async def test_a_refused_connection_is_retryable() -> None:
    sock = bind()  # a port that is bound but never accepts
    port = sock.getsockname()[1]
    sock.close()
    adapter = EmcAdapter(
        "emc",
        HttpPeer(f"http://127.0.0.1:{port}", make_transport(max_connections=1), timeout_s=1),
    )
    with pytest.raises(RetryableError, match="Cannot connect to host"):
        await send(adapter, claimed(0, "TrackingMCDT"))
    await adapter.aclose()


async def test_a_field_the_peer_refuses_is_permanent(emc: EmcAdapter) -> None:
    delivery = claimed(0, "TrackingMCDT")
    with pytest.raises(PermanentError, match="SiteId 'NOT-REGISTERED' is not registered"):
        await send(emc, delivery, site_id="NOT-REGISTERED")


def all_subclasses(cls: type[BaseException]) -> Iterator[type[BaseException]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from all_subclasses(sub)


def instantiate(cls: type[BaseException]) -> BaseException:
    request = httpx.Request("POST", "http://127.0.0.1/")
    response = httpx.Response(500, request=request)
    for args, kwargs in (
        (("boom",), {"request": request}),
        (("boom",), {"request": request, "response": response}),
        (("boom",), {}),
        ((), {}),
        ((None, OSError(111, "refused")), {}),
        ((None, ()), {}),
        ((b"", b"", "127.0.0.1", 443), {}),
        (("/run/sock", None, OSError("refused")), {}),
    ):
        try:
            return cls(*args, **kwargs)
        except (TypeError, AttributeError):
            continue
    pytest.skip(f"cannot build {cls.__name__} without a live connection")


LIBRARY_ERRORS = sorted(
    {
        *all_subclasses(httpx.HTTPError),
        *all_subclasses(aiohttp.ClientError),
        TimeoutError,
        asyncio.TimeoutError,
        OSError,
        ConnectionResetError,
    },
    key=lambda c: f"{c.__module__}.{c.__qualname__}",
)


@pytest.mark.parametrize("error", LIBRARY_ERRORS, ids=lambda c: c.__qualname__)
def test_no_library_error_escapes_the_boundary_unmapped(error: type[BaseException]) -> None:
    with pytest.raises(DeliveryError), map_transport_errors("portal", "DongBoHoSoMC"):
        raise instantiate(error)


async def test_an_httpx_error_from_the_transport_is_mapped_through_the_adapter() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection", request=request)

    peer = HttpPeer("http://portal.test", httpx.MockTransport(refuse), timeout_s=1)
    adapter = PortalAdapter("portal", peer, PortalCredentials("D", "u", "p"))
    with pytest.raises(RetryableError, match="RemoteProtocolError"):
        await send(adapter, claimed(0))
    await adapter.aclose()


def malformed_seed(kind: str) -> int:
    """A fault-plan seed whose first malformed answer is ``kind`` (drawn after the fault itself)."""
    for seed in range(100):
        rng = random.Random(seed)
        rng.random()
        rng.choice(("malformed",))
        if rng.choice(("html", "truncated", "content_type")) == kind:
            return seed
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [("html", "text/html"), ("truncated", "application/json"), ("content_type", "text/plain")],
)
async def test_every_malformed_answer_is_retryable_naming_what_came(
    portal: PortalAdapter, peers: Peers, kind: str, content_type: str
) -> None:
    peers.portal.set_faults(FaultPlan(rate=1.0, kinds=("malformed",), seed=malformed_seed(kind)))
    with pytest.raises(RetryableError, match=rf"answer is not JSON \({content_type}\)"):
        await send(portal, claimed(0))


@pytest.mark.parametrize(("kind", "retried"), [("html", True), ("truncated", True), ("content_type", False)])
async def test_emc_retries_a_page_or_a_cut_answer_and_takes_plain_text(
    emc: EmcAdapter, peers: Peers, kind: str, retried: bool
) -> None:
    peers.emc.set_faults(FaultPlan(rate=1.0, kinds=("malformed",), seed=malformed_seed(kind)))
    if retried:
        with pytest.raises(RetryableError, match="answer is not JSON"):
            await send(emc, claimed(0, "TrackingMCDT"))
    else:  # EMC's reply body is not public: a 2xx in plain text ("OK") is success
        assert (await send(emc, claimed(0, "TrackingMCDT"))).http_status == 200
