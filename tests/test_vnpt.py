"""VNPT e-invoices against the sandbox: publish once per Fkey however often asked, typed results, errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from lienthong.adapters.einvoice.vnpt import (
    Published,
    VnptAccount,
    VnptFailure,
    VnptInvoiceAdapter,
    parse_result,
)
from lienthong.adapters.http import make_transport
from lienthong.adapters.population import make_soap_transport
from lienthong.adapters.soap import map_soap_errors
from lienthong.errors import DeliveryError, PermanentError, RetryableError
from lienthong.mappings import SpecLoader, bundled_dir
from lienthong.sandbox.vnpt import VnptSandbox
from lienthong.serving import ThreadedServer
from test_population import LIBRARY_ERRORS, instance

GOLDEN = bundled_dir() / "golden" / "einvoice_receipt"
ACCOUNT = VnptAccount("h56admin", "sandbox-acpass", "h56service", "sandbox-pass", "1", "C26TBL")


def receipt() -> dict[str, Any]:
    mapping = SpecLoader().load("bundled:einvoice_receipt")
    record = json.loads((GOLDEN / "two-fees-online.input.json").read_text(encoding="utf-8"))
    params = json.loads((GOLDEN / "params.json").read_text(encoding="utf-8"))
    return mapping(record, params=params)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("OK:1/001;C26TBL-paygov-PG1_0000007", Published("1/001", "C26TBL", "paygov-PG1", "0000007")),
        ("ERR:13", VnptFailure("13")),
        ("ERR:3:bad xml", VnptFailure("3")),
    ],
)
def test_results_parse_into_typed_outcomes(text: str, expected: object) -> None:
    assert parse_result(text) == expected


@pytest.mark.parametrize("text", ["", "OK", "<html>", "OK:1/001"])
def test_anything_else_is_not_a_result(text: str) -> None:
    with pytest.raises(ValueError, match="not a VNPT result"):
        parse_result(text)


@pytest.fixture
def sandbox() -> Iterator[tuple[VnptSandbox, str]]:
    peer = VnptSandbox()
    with ThreadedServer(lambda: peer) as server:
        yield peer, server.url


def adapter_for(url: str, account: VnptAccount = ACCOUNT, timeout_s: float = 5) -> VnptInvoiceAdapter:
    client = httpx.AsyncClient(transport=make_transport(max_connections=4))
    return VnptInvoiceAdapter(
        "vnpt",
        make_soap_transport(client),
        address=f"{url}/PublishService.asmx",
        account=account,
        timeout_s=timeout_s,
    )


@pytest.fixture
async def vnpt(sandbox: tuple[VnptSandbox, str]) -> AsyncIterator[VnptInvoiceAdapter]:
    adapter = adapter_for(sandbox[1])
    yield adapter
    await adapter.aclose()


async def test_a_receipt_is_published_and_found_by_its_fkey(
    vnpt: VnptInvoiceAdapter, sandbox: tuple[VnptSandbox, str]
) -> None:
    published = await vnpt.issue("paygov-PG1", receipt())
    assert published == Published("1", "C26TBL", "paygov-PG1", "0000001")
    assert await vnpt.find("paygov-PG1") == published
    assert await vnpt.find("paygov-NONE") is None
    stored = sandbox[0].invoices["paygov-PG1"].xml.decode()
    assert "<TgTTTBChu>Một trăm hai mươi lăm nghìn đồng</TgTTTBChu>" in stored


async def test_issuing_again_returns_the_same_receipt_never_a_second_one(
    vnpt: VnptInvoiceAdapter, sandbox: tuple[VnptSandbox, str]
) -> None:
    first = await vnpt.issue("paygov-PG2", receipt())
    again = await vnpt.issue("paygov-PG2", receipt())  # a retry after a timeout: VNPT answers ERR:13
    assert again == first
    assert list(sandbox[0].invoices) == ["paygov-PG2"]


async def test_a_cancelled_receipt_stays_cancelled_and_an_unknown_one_is_err_6(
    vnpt: VnptInvoiceAdapter, sandbox: tuple[VnptSandbox, str]
) -> None:
    await vnpt.issue("paygov-PG3", receipt())
    await vnpt.cancel("paygov-PG3")
    assert sandbox[0].invoices["paygov-PG3"].status == "3"
    with pytest.raises(PermanentError, match="VNPT ERR:6: no invoice with this Fkey") as caught:
        await vnpt.cancel("paygov-NONE")
    assert caught.value.remote_code == "ERR:6"


async def test_refusals_are_permanent_with_their_meaning(sandbox: tuple[VnptSandbox, str]) -> None:
    wrong_account = adapter_for(
        sandbox[1], VnptAccount("h56admin", "wrong", "h56service", "sandbox-pass", "1", "C26TBL")
    )
    with pytest.raises(PermanentError, match="VNPT ERR:1: account or password refused"):
        await wrong_account.issue("k1", receipt())
    await wrong_account.aclose()
    wrong_series = adapter_for(
        sandbox[1], VnptAccount("h56admin", "sandbox-acpass", "h56service", "sandbox-pass", "1", "C99XXX")
    )
    with pytest.raises(PermanentError, match="VNPT ERR:20: pattern and serial do not match"):
        await wrong_series.issue("k2", receipt())
    await wrong_series.aclose()


async def test_totals_that_do_not_add_up_are_refused(vnpt: VnptInvoiceAdapter) -> None:
    invoice = receipt()
    invoice["DLHDon"]["NDHDon"]["TToan"]["TgTTTBSo"] = 1
    with pytest.raises(PermanentError, match="VNPT ERR:3: the invoice XML is not valid"):
        await vnpt.issue("k3", invoice)


@pytest.mark.parametrize("fault", ["error", "throttle", "drop", "malformed"])
async def test_service_faults_are_retryable(
    vnpt: VnptInvoiceAdapter, sandbox: tuple[VnptSandbox, str], fault: str
) -> None:
    sandbox[0].inject(fault)  # type: ignore[arg-type]
    with pytest.raises(RetryableError):
        await vnpt.issue("k4", receipt())


async def test_a_dropped_publish_retried_still_makes_one_receipt(
    vnpt: VnptInvoiceAdapter, sandbox: tuple[VnptSandbox, str]
) -> None:
    sandbox[0].inject("drop")  # published, then the answer is lost
    with pytest.raises(RetryableError):
        await vnpt.issue("paygov-PG5", receipt())
    published = await vnpt.issue("paygov-PG5", receipt())
    assert published.number == "0000001"
    assert len(sandbox[0].invoices) == 1


@pytest.mark.parametrize("cls", LIBRARY_ERRORS, ids=lambda c: c.__qualname__)
def test_no_library_exception_escapes_the_soap_boundary_of_a_delivery(cls: type[BaseException]) -> None:
    with (
        pytest.raises(DeliveryError),
        map_soap_errors(
            lambda message, _code: RetryableError(message, destination="vnpt"),
            lambda message, code: PermanentError(message, destination="vnpt", remote_code=code),
        ),
    ):
        raise instance(cls)
