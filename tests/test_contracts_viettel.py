"""Viettel S-Invoice contract (issue 9 §2, docs/contracts.md §3): the adapter against a sandbox answering the
real way, one test per fact; the adapter's reading of answers the sandbox never gives through MockTransport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from lienthong.adapters.einvoice.viettel import API, TokenAs, ViettelAccount, ViettelInvoiceAdapter
from lienthong.adapters.http import HttpPeer, make_transport
from lienthong.config import ViettelDestination
from lienthong.errors import PermanentError, RetryableError
from lienthong.sandbox.viettel import PAID, ViettelSandbox
from lienthong.serving import ThreadedServer
from test_viettel import ACCOUNT, invoice

SEARCH = f"{API}/searchInvoiceByTransactionUuid"
CREATE = f"{API}/createInvoice/3300000000"
NOW_S = 1_795_000_000.75  # a wall-clock instant with a fraction of a second


@pytest.fixture
def sandbox() -> Iterator[tuple[ViettelSandbox, str]]:
    peer = ViettelSandbox()
    with ThreadedServer(lambda: peer) as server:
        yield peer, server.url


def adapter_for(url: str, account: ViettelAccount = ACCOUNT) -> ViettelInvoiceAdapter:
    peer = HttpPeer(url, make_transport(max_connections=4), timeout_s=2)
    return ViettelInvoiceAdapter("viettel", peer, account, wall_clock=lambda: NOW_S)


@pytest.fixture
async def viettel(sandbox: tuple[ViettelSandbox, str]) -> AsyncIterator[ViettelInvoiceAdapter]:
    adapter = adapter_for(sandbox[1])
    yield adapter
    await adapter.aclose()


async def raw(url: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.post(path, **kwargs)


def on_the_wire(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the adapter sends it: with invoiceIssuedDate."""
    body["generalInvoiceInfo"]["invoiceIssuedDate"] = 1_795_000_000_000
    return body


async def token(url: str) -> str:
    answer = await raw(url, "/auth/login", json={"username": ACCOUNT.username, "password": ACCOUNT.password})
    body = answer.json()
    assert set(body) >= {"access_token", "expires_in"}
    assert isinstance(body["expires_in"], int)  # seconds
    return str(body["access_token"])


# -- the search is form-encoded ----------------------------------------------------------------------------


async def test_the_search_refuses_a_json_body_as_spring_does_and_takes_a_form(
    sandbox: tuple[ViettelSandbox, str], viettel: ViettelInvoiceAdapter
) -> None:
    _, url = sandbox
    cookie = {"cookie": f"access_token={await token(url)}"}
    form = {"supplierTaxCode": "3300000000", "transactionUuid": "paygov-NONE"}
    as_json = await raw(url, SEARCH, json=form, headers=cookie)
    assert as_json.status_code == 400
    assert as_json.json()["message"] == "Required String parameter 'supplierTaxCode' is not present"
    as_form = await raw(url, SEARCH, data=form, headers=cookie)
    assert as_form.json()["message"] == "NOT_FOUND_DATA"  # read, and answered
    await viettel.issue(invoice(), retrying=False)
    assert await viettel.find("paygov-PG0000000009") is not None  # the adapter posts a form


# -- nothing issued: issue it now ---------------------------------------------------------------------------


async def test_not_found_data_on_a_retry_means_issue_it_now(
    sandbox: tuple[ViettelSandbox, str], viettel: ViettelInvoiceAdapter
) -> None:
    peer, url = sandbox
    answer = await raw(
        url,
        SEARCH,
        data={"supplierTaxCode": "3300000000", "transactionUuid": "paygov-PG0000000009"},
        headers={"authorization": f"Bearer {await token(url)}"},
    )
    assert answer.status_code == 400
    assert answer.json() == {"code": 400, "message": "NOT_FOUND_DATA", "data": "Không tìm thấy dữ liệu"}
    issued = await viettel.issue(invoice(), retrying=True)  # a retry searches first: nothing, so issue
    assert issued.invoice_no == "K26TBL0000001"
    assert list(peer.invoices) == ["paygov-PG0000000009"]


async def test_an_error_answer_is_a_permanent_error_carrying_its_code_and_text(
    viettel: ViettelInvoiceAdapter,
) -> None:
    broken = invoice()
    broken["buyerInfo"]["buyerName"] = ""
    with pytest.raises(PermanentError) as caught:
        await viettel.issue(broken, retrying=False)
    error = caught.value
    assert (error.status, error.remote_code) == (400, "INVALID_DATA")
    assert "buyerInfo.buyerName is required" in error.message


# -- a duplicate transactionUuid: take the existing invoice -------------------------------------------------


async def test_transaction_uuid_invalid_takes_the_existing_invoice(
    sandbox: tuple[ViettelSandbox, str], viettel: ViettelInvoiceAdapter
) -> None:
    peer, url = sandbox
    first = await viettel.issue(invoice(), retrying=False)
    cookie = {"cookie": f"access_token={await token(url)}"}
    again = await raw(url, CREATE, json=on_the_wire(invoice()), headers=cookie)
    assert again.status_code == 400
    assert again.json()["message"] == "TRANSACTION_UUID_INVALID"
    assert await viettel.issue(invoice(), retrying=False) == first
    assert len(peer.invoices) == 1


async def test_the_duplicate_and_not_found_codes_are_configurable(
    sandbox: tuple[ViettelSandbox, str],
) -> None:
    defaults = ViettelDestination.model_validate(
        {
            "kind": "viettel",
            "base_url": "https://api-vinvoice.viettel.vn",
            "username": "u",
            "password": "p",
            "supplier_tax_code": "3300000000",
            "template_code": "2/001",
            "series": "K26TBL",
            "seller_name": "S",
            "seller_tax_code": "3300000000",
        }
    )
    assert (defaults.duplicate_codes, defaults.not_found_codes, defaults.token_as) == (
        ["TRANSACTION_UUID_INVALID"],
        ["NOT_FOUND_DATA"],
        "both",
    )
    other = ViettelAccount(
        ACCOUNT.username,
        ACCOUNT.password,
        ACCOUNT.supplier_tax_code,
        duplicate_codes=frozenset({"DUPLICATE_TRANSACTION_UUID"}),
        not_found_codes=frozenset({"NO_DATA"}),
    )
    adapter = adapter_for(sandbox[1], other)
    with pytest.raises(PermanentError) as caught:  # NOT_FOUND_DATA is now just an error
        await adapter.find("paygov-NONE")
    assert caught.value.remote_code == "NOT_FOUND_DATA"
    await adapter.issue(invoice(), retrying=False)
    with pytest.raises(PermanentError) as caught:  # and TRANSACTION_UUID_INVALID too
        await adapter.issue(invoice(), retrying=False)
    assert caught.value.remote_code == "TRANSACTION_UUID_INVALID"
    await adapter.aclose()


# -- an expired token answers 500 GENERAL -------------------------------------------------------------------


async def test_an_expired_token_answers_500_general_and_is_renewed_once(
    sandbox: tuple[ViettelSandbox, str], viettel: ViettelInvoiceAdapter
) -> None:
    peer, url = sandbox
    stale = await token(url)
    peer.expire_tokens()
    answer = await raw(
        url, SEARCH, data={"supplierTaxCode": "1"}, headers={"cookie": f"access_token={stale}"}
    )
    assert answer.status_code == 500
    assert {k: answer.json()[k] for k in ("message", "error")} == {
        "message": "GENERAL",
        "error": "Internal Server Error",
    }
    await viettel.find("warm-up")
    peer.expire_tokens()
    await viettel.issue(invoice(), retrying=False)
    assert viettel.logins == 2
    assert len(peer.invoices) == 1


async def test_a_service_still_answering_general_after_a_fresh_login_is_retried_later() -> None:
    peer = ViettelSandbox(token_ttl_s=0)  # every token is expired when used
    with ThreadedServer(lambda: peer) as server:
        adapter = adapter_for(server.url)
        with pytest.raises(RetryableError, match="GENERAL with HTTP 500 after a fresh login") as caught:
            await adapter.issue(invoice(), retrying=False)
        assert (caught.value.status, adapter.logins) == (500, 2)  # one new login, one repeat, no more
        await adapter.aclose()
    assert not peer.invoices


# -- the token as a cookie, a Bearer header, or both --------------------------------------------------------


@pytest.mark.parametrize(
    ("accepts", "sends"),
    [
        ("cookie", "cookie"),
        ("cookie", "both"),
        ("bearer", "bearer"),
        ("bearer", "both"),
        ("both", "cookie"),
        ("both", "bearer"),
    ],
)
async def test_the_token_travels_as_configured(accepts: TokenAs, sends: TokenAs) -> None:
    peer = ViettelSandbox(token_as=accepts)
    with ThreadedServer(lambda: peer) as server:
        adapter = adapter_for(server.url, ViettelAccount(*_credentials(), token_as=sends))
        await adapter.issue(invoice(), retrying=False)
        await adapter.aclose()
    assert len(peer.invoices) == 1


@pytest.mark.parametrize(("accepts", "sends"), [("cookie", "bearer"), ("bearer", "cookie")])
async def test_a_token_sent_where_the_service_does_not_read_it_is_refused(
    accepts: TokenAs, sends: TokenAs
) -> None:
    peer = ViettelSandbox(token_as=accepts)
    with ThreadedServer(lambda: peer) as server:
        header = (
            {"authorization": f"Bearer {await token(server.url)}"}
            if sends == "bearer"
            else {"cookie": f"access_token={await token(server.url)}"}
        )
        answer = await raw(server.url, CREATE, json=on_the_wire(invoice()), headers=header)
        assert (answer.status_code, answer.json()["error"]) == (401, "unauthorized")
        adapter = adapter_for(server.url, ViettelAccount(*_credentials(), token_as=sends))
        with pytest.raises(PermanentError, match="Viettel refused a fresh token"):
            await adapter.issue(invoice(), retrying=False)
        assert adapter.logins == 2
        await adapter.aclose()


def _credentials() -> tuple[str, str, str]:
    return ACCOUNT.username, ACCOUNT.password, ACCOUNT.supplier_tax_code


# -- the shapes: invoiceIssuedDate, the create and search answers -------------------------------------------


async def test_invoice_issued_date_is_epoch_ms_in_whole_seconds(
    sandbox: tuple[ViettelSandbox, str], viettel: ViettelInvoiceAdapter
) -> None:
    peer, _ = sandbox
    await viettel.issue(invoice("T1"), retrying=False)
    given = invoice("T2")
    given["generalInvoiceInfo"]["invoiceIssuedDate"] = "2026-11-23T08:03:00.250+07:00"
    await viettel.issue(given, retrying=False)
    dates = [r.body["generalInvoiceInfo"]["invoiceIssuedDate"] for r in peer.received]
    paid = datetime(2026, 11, 23, 1, 3, tzinfo=UTC).timestamp()
    assert dates == [1_795_000_000_000, int(paid) * 1000]


async def test_the_sandbox_refuses_an_issued_date_that_is_not_whole_seconds(
    sandbox: tuple[ViettelSandbox, str],
) -> None:
    _, url = sandbox
    body = invoice()
    body["generalInvoiceInfo"]["invoiceIssuedDate"] = 1_795_000_000_250
    answer = await raw(url, CREATE, json=body, headers={"cookie": f"access_token={await token(url)}"})
    assert answer.status_code == 400
    assert answer.json()["message"] == "INVALID_DATA"


async def test_the_create_and_search_answers_have_the_real_fields(
    sandbox: tuple[ViettelSandbox, str], viettel: ViettelInvoiceAdapter
) -> None:
    _, url = sandbox
    created = await raw(
        url, CREATE, json=on_the_wire(invoice()), headers={"cookie": f"access_token={await token(url)}"}
    )
    assert created.status_code == 200
    answer = created.json()
    assert (answer["errorCode"], answer["description"]) == (None, None)
    assert set(answer["result"]) == {"supplierTaxCode", "invoiceNo", "transactionID", "reservationCode"}
    found = await viettel.find("paygov-PG0000000009")
    assert found is not None
    assert found.invoice_no == answer["result"]["invoiceNo"]
    assert found.reservation_code == answer["result"]["reservationCode"]
    assert found.transaction_id == answer["result"]["transactionID"]
    assert (found.issue_date, found.status) == (1_795_000_000_000, PAID)  # status: paid, not "issued"


# -- an answer that names no invoiceNo is unknown, never delivered ------------------------------------------


def scripted(create: dict[str, Any], search: tuple[int, dict[str, Any]]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/login":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        if request.url.path == SEARCH:
            return httpx.Response(search[0], json=search[1])
        return httpx.Response(200, json=create)

    return httpx.MockTransport(answer)


def mocked(transport: httpx.MockTransport) -> ViettelInvoiceAdapter:
    return ViettelInvoiceAdapter("viettel", HttpPeer("http://viettel.test", transport, timeout_s=1), ACCOUNT)


NOT_FOUND = (400, {"code": 400, "message": "NOT_FOUND_DATA", "data": "Không tìm thấy dữ liệu"})
NO_NUMBERS: list[Callable[[], dict[str, Any]]] = [
    lambda: {"errorCode": None, "description": None, "result": {"invoiceNo": "", "transactionID": "x"}},
    lambda: {"errorCode": None, "description": None, "result": {"transactionID": "x"}},
    lambda: {"errorCode": None, "description": None, "result": None},
]


@pytest.mark.parametrize("create", NO_NUMBERS, ids=["empty", "missing", "no-result"])
async def test_a_create_answer_without_an_invoice_no_is_unknown_and_retried(
    create: Callable[[], dict[str, Any]],
) -> None:
    adapter = mocked(scripted(create(), NOT_FOUND))
    with pytest.raises(RetryableError, match="unknown"):
        await adapter.issue(invoice(), retrying=False)
    await adapter.aclose()


@pytest.mark.parametrize("row", [{"invoiceNo": None, "status": PAID}, {"invoiceNo": "  "}, {}])
async def test_a_search_row_without_an_invoice_no_is_unknown_not_issued_again(row: dict[str, Any]) -> None:
    created: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/login":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        if request.url.path == SEARCH:
            assert request.headers["content-type"] == "application/x-www-form-urlencoded"
            return httpx.Response(200, json={"errorCode": None, "description": None, "result": [row]})
        created.append(request.content)
        return httpx.Response(500)

    adapter = mocked(httpx.MockTransport(answer))
    with pytest.raises(RetryableError, match="names no invoiceNo"):
        await adapter.issue(invoice(), retrying=True)
    assert not created
    await adapter.aclose()


async def test_a_duplicate_that_no_search_finds_is_unknown_not_issued_again() -> None:
    duplicate = {"code": 400, "message": "TRANSACTION_UUID_INVALID", "data": "đã được lập hóa đơn"}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/login":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        if request.url.path == SEARCH:
            return httpx.Response(*NOT_FOUND[:1], json=NOT_FOUND[1])
        assert orjson.loads(request.content)["generalInvoiceInfo"]["transactionUuid"]
        return httpx.Response(400, json=duplicate)

    adapter = mocked(httpx.MockTransport(answer))
    with pytest.raises(RetryableError, match="TRANSACTION_UUID_INVALID .* a search finds nothing"):
        await adapter.issue(invoice(), retrying=False)
    await adapter.aclose()
