"""The population-database adapter against its SOAP sandbox: contract, every failure class, the boundary."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
import pytest
import zeep.exceptions

from lienthong.adapters.http import make_transport
from lienthong.adapters.population import (
    CitizenQuery,
    PopulationAdapter,
    make_soap_transport,
    map_lookup_errors,
)
from lienthong.errors import (
    CitizenLookupError,
    CitizenMismatch,
    CitizenNotFound,
    PopulationRefused,
    PopulationUnavailable,
)
from lienthong.sandbox import FaultPlan
from lienthong.sandbox.base import Answer, Request
from lienthong.sandbox.population import PopulationSandbox, synthetic_citizen
from lienthong.serving import ThreadedServer

CITIZEN = synthetic_citizen("046090000123", "Nguyễn Thị Thu Hà")


class XxeSandbox(PopulationSandbox):
    """A hostile or broken peer that answers with a DTD declaring an external entity."""

    async def _lookup(self, request: Request) -> Answer:
        body = (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            b'<c:CongdanCollection xmlns:c="http://csdl.dancu.gov.vn/congdan"><c:CongDan><c:SoDinhDanh>&e;'
            b"</c:SoDinhDanh></c:CongDan></c:CongdanCollection></soap:Body></soap:Envelope>"
        )
        return Answer(200, body, b"text/xml")


@pytest.fixture
def sandbox() -> Iterator[tuple[PopulationSandbox, str]]:
    peer = PopulationSandbox()
    peer.add(CITIZEN)
    with ThreadedServer(lambda: peer) as server:
        yield peer, server.url


def adapter_for(
    url: str, *, ma_tich_hop: str = "LIENTHONG-SANDBOX", timeout_s: float = 2.0
) -> PopulationAdapter:
    client = httpx.AsyncClient(transport=make_transport(max_connections=4))
    return PopulationAdapter(
        "population",
        make_soap_transport(client),
        address=f"{url}/ws/congdan",
        ma_tich_hop=ma_tich_hop,
        ma_dvc="DVC-H56",
        timeout_s=timeout_s,
    )


@pytest.fixture
async def population(sandbox: tuple[PopulationSandbox, str]) -> AsyncIterator[PopulationAdapter]:
    adapter = adapter_for(sandbox[1])
    yield adapter
    await adapter.aclose()


def query(id_number: str = "046090000123", **extra: str) -> CitizenQuery:
    return CitizenQuery(id_number, official_id="CB-0042", request_id="req-1", **extra)


async def test_a_registered_citizen_is_returned_as_a_typed_record(
    population: PopulationAdapter, sandbox: tuple[PopulationSandbox, str]
) -> None:
    citizen = await population.lookup(query())
    assert citizen.full_name == "Nguyễn Thị Thu Hà"
    assert citizen.ThuongTru is not None
    assert citizen.ThuongTru.TenTinhThanh == CITIZEN["ThuongTru"]["TenTinhThanh"]
    (received,) = sandbox[0].received
    assert received.key == "req-1"
    assert received.body["MaCanBo"] == "CB-0042"
    assert received.body["MaDVC"] == "DVC-H56"


async def test_name_and_birth_date_are_checked_when_given(population: PopulationAdapter) -> None:
    born = CITIZEN["NgayThangNamSinh"]["NgayThangNam"]
    citizen = await population.lookup(query(full_name="  nguyễn thị  THU hà ", birth_date=born))
    assert citizen.SoDinhDanh == "046090000123"
    with pytest.raises(CitizenMismatch) as caught:
        await population.lookup(query(full_name="Nguyễn Thị Hà", birth_date="19000101"))
    assert caught.value.fields == ["name", "birth_date"]
    assert str(caught.value) == "the citizen's name and birth date do not match"


async def test_an_unknown_id_is_not_found(population: PopulationAdapter) -> None:
    with pytest.raises(CitizenNotFound, match="no citizen has this SoDinhDanh"):
        await population.lookup(query("046090000999"))


async def test_a_request_the_service_refuses_is_refused_with_its_fault(
    sandbox: tuple[PopulationSandbox, str],
) -> None:
    adapter = adapter_for(sandbox[1], ma_tich_hop="NOT-LICENSED")
    with pytest.raises(PopulationRefused, match="MaTichHop 'NOT-LICENSED' không được cấp phép") as caught:
        await adapter.lookup(query())
    assert caught.value.remote_code == "soap:Client"
    await adapter.aclose()


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("error", "the service failed: Hệ thống đang bận"),
        ("throttle", "the service answered http 429"),
        ("drop", "cannot reach the service"),
    ],
)
async def test_service_faults_are_unavailable(
    population: PopulationAdapter, sandbox: tuple[PopulationSandbox, str], fault: str, message: str
) -> None:
    sandbox[0].inject(fault)  # type: ignore[arg-type]
    with pytest.raises(PopulationUnavailable, match=message):
        await population.lookup(query())


def seed_for(kind: str) -> int:
    """A fault-plan seed whose first malformed answer is ``kind`` (the sandbox draws it after the fault)."""
    for seed in range(100):
        rng = random.Random(seed)
        rng.random()  # the draw that decides a fault happens
        rng.choice(("malformed",))
        if rng.choice(("truncated", "content_type", "html")) == kind:
            return seed
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("truncated", r"the answer is not SOAP: Server returned response \(200\) with invalid XML"),
        ("content_type", "the answer is not SOAP"),
        ("html", "the answer is not SOAP: .* root element found is html"),
    ],
)
async def test_malformed_answers_are_unavailable_never_a_crash(
    population: PopulationAdapter, sandbox: tuple[PopulationSandbox, str], kind: str, message: str
) -> None:
    sandbox[0].set_faults(FaultPlan(rate=1.0, kinds=("malformed",), seed=seed_for(kind)))
    with pytest.raises(PopulationUnavailable, match=message):
        await population.lookup(query())


async def test_a_slow_service_times_out(sandbox: tuple[PopulationSandbox, str]) -> None:
    adapter = adapter_for(sandbox[1], timeout_s=0.1)
    sandbox[0].set_faults(FaultPlan(rate=1.0, kinds=("latency",), latency_ms=500))
    with pytest.raises(PopulationUnavailable, match="did not answer in time"):
        await adapter.lookup(query())
    await adapter.aclose()


async def test_an_answer_with_a_dtd_and_entities_is_refused_unread() -> None:
    peer = XxeSandbox()
    with ThreadedServer(lambda: peer) as server:
        adapter = adapter_for(server.url)
        with pytest.raises(PopulationUnavailable, match="carried a DTD, entities or external references"):
            await adapter.lookup(query())
        await adapter.aclose()


def all_subclasses(cls: type[BaseException]) -> Iterator[type[BaseException]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from all_subclasses(sub)


def instance(cls: type[BaseException]) -> BaseException:
    if issubclass(cls, zeep.exceptions.Fault):
        return cls("boom", code="soap:Server")
    if issubclass(cls, zeep.exceptions.TransportError):
        return cls(status_code=502)
    if issubclass(cls, httpx.HTTPStatusError):
        request = httpx.Request("POST", "http://x")
        return cls("boom", request=request, response=httpx.Response(500, request=request))
    try:
        return cls("boom")
    except TypeError:
        return cls.__new__(cls)


LIBRARY_ERRORS: list[type[BaseException]] = sorted(
    {
        *all_subclasses(zeep.exceptions.Error),
        *all_subclasses(httpx.HTTPError),
        *all_subclasses(aiohttp.ClientError),
    },
    key=lambda c: f"{c.__module__}.{c.__qualname__}",
)


@pytest.mark.parametrize("cls", LIBRARY_ERRORS, ids=lambda c: c.__qualname__)
def test_no_library_exception_escapes_the_lookup_boundary(cls: type[BaseException]) -> None:
    with pytest.raises(CitizenLookupError), map_lookup_errors():
        raise instance(cls)
