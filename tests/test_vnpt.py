"""VNPT e-invoices against the sandbox: publish once per Fkey however often asked, typed results, errors."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from lienthong.adapters.einvoice.vnpt import (
    Published,
    Unconfirmed,
    VnptAccount,
    VnptFailure,
    VnptInvoiceAdapter,
    VnptServices,
    parse_result,
)
from lienthong.adapters.http import make_transport
from lienthong.adapters.population import make_soap_transport
from lienthong.adapters.soap import map_soap_errors
from lienthong.errors import DeliveryError, PermanentError, RetryableError
from lienthong.mappings import SpecLoader, bundled_dir
from lienthong.sandbox.vnpt import VnptSandbox, _without_operation
from lienthong.serving import ThreadedServer
from test_population import LIBRARY_ERRORS, instance

GOLDEN = bundled_dir() / "golden" / "einvoice_receipt"
ACCOUNT = VnptAccount(
    "h56admin", "sandbox-acpass", "h56service", "sandbox-pass", "1/001", "C26TAA", comtaxcode="3300000000"
)


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
        ("OK:1/001;C26TAA-k1_0000009_M1-26-ABCDE", Published("1/001", "C26TAA", "k1", "0000009")),  # MTT
        ("OK:1/001;C26TAA-k1_1,k2_2", Published("1/001", "C26TAA", "k1", "1")),
        ("ERR:3:bad xml", VnptFailure("3")),
    ],
)
def test_results_parse_into_typed_outcomes(text: str, expected: object) -> None:
    assert parse_result(text) == expected


@pytest.mark.parametrize(
    "text", ["", "OK", "<html>", "OK:1/001", "OK:1/001;C26TAA-k1_", "OK:1/001;C26TAA-_7"]
)
def test_anything_else_is_not_a_result(text: str) -> None:
    with pytest.raises(ValueError, match="not a VNPT result"):
        parse_result(text)


@pytest.fixture
def sandbox() -> Iterator[tuple[VnptSandbox, str]]:
    peer = VnptSandbox()
    with ThreadedServer(lambda: peer) as server:
        yield peer, server.url


def adapter_for(
    url: str, account: VnptAccount = ACCOUNT, timeout_s: float = 5, **wsdls: str
) -> VnptInvoiceAdapter:
    client = httpx.AsyncClient(transport=make_transport(max_connections=4))
    return VnptInvoiceAdapter(
        "vnpt",
        make_soap_transport(client, wsdl_client=httpx.Client(timeout=5)),
        services=VnptServices.at(url, **wsdls),
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
    assert published == Published("1/001", "C26TAA", "paygov-PG1", "0000001")
    assert await vnpt.find("paygov-PG1") == published
    with pytest.raises(Unconfirmed, match="ERR:404"):  # VNPT's "not found" is not trusted either
        await vnpt.find("paygov-NONE")
    stored = sandbox[0].invoices["paygov-PG1"].xml.decode()
    hdon = etree.fromstring(stored.encode())
    assert [hdon[0].tag, hdon[0].text, hdon[1][0][0].tag] == ["key", "paygov-PG1", "MHSo"]  # VNPT's input
    assert "<TgTTTBChu>Một trăm hai mươi lăm nghìn đồng</TgTTTBChu>" in stored
    for output_only in ("<Fkey>", "<PBan>", "<THDon>", "<KHMSHDon>", "<KHHDon>", "<MGDich>", 'Id="'):
        assert output_only not in stored


async def test_issuing_again_returns_the_same_receipt_never_a_second_one(
    vnpt: VnptInvoiceAdapter, sandbox: tuple[VnptSandbox, str]
) -> None:
    first = await vnpt.issue("paygov-PG2", receipt())
    again = await vnpt.issue("paygov-PG2", receipt())  # a retry after a timeout: VNPT answers ERR:13
    assert again == first
    assert list(sandbox[0].invoices) == ["paygov-PG2"]


async def test_a_receipt_is_cancelled_on_business_service_and_an_unknown_one_is_err_2(
    vnpt: VnptInvoiceAdapter, sandbox: tuple[VnptSandbox, str]
) -> None:
    await vnpt.issue("paygov-PG3", receipt())
    await vnpt.cancel("paygov-PG3")
    assert sandbox[0].invoices["paygov-PG3"].status == "3"
    with pytest.raises(PermanentError, match="VNPT ERR:2: no invoice with this key") as caught:
        await vnpt.cancel("paygov-NONE")
    assert caught.value.remote_code == "ERR:2"


async def test_refusals_are_permanent_with_their_meaning(sandbox: tuple[VnptSandbox, str]) -> None:
    wrong_account = adapter_for(
        sandbox[1], VnptAccount("h56admin", "wrong", "h56service", "sandbox-pass", "1/001", "C26TAA")
    )
    with pytest.raises(PermanentError, match="VNPT ERR:1: account or password refused"):
        await wrong_account.issue("k1", receipt())
    await wrong_account.aclose()
    wrong_series = adapter_for(
        sandbox[1], VnptAccount("h56admin", "sandbox-acpass", "h56service", "sandbox-pass", "1/001", "C99XXX")
    )
    with pytest.raises(PermanentError, match="VNPT ERR:20: pattern and serial do not match, or are not"):
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
            lambda failure: RetryableError(failure.message, destination="vnpt"),
            lambda failure: PermanentError(
                failure.message, destination="vnpt", remote_code=failure.remote_code
            ),
        ),
    ):
        raise instance(cls)


@pytest.mark.parametrize("fault", ["empty", "other_key", "doctype", "not_found"])
async def test_a_look_up_that_does_not_confirm_the_key_and_a_number_is_unknown_never_delivered(
    vnpt: VnptInvoiceAdapter, sandbox: tuple[VnptSandbox, str], fault: str
) -> None:
    await vnpt.issue("paygov-PG6", receipt())
    sandbox[0].lookup_fault = fault  # type: ignore[assignment]
    with pytest.raises(RetryableError, match="exists \\(ERR:13\\) but its look-up does not confirm it"):
        await vnpt.issue("paygov-PG6", receipt())  # a retry: ERR:13, then a look-up we must not trust
    assert len(sandbox[0].invoices) == 1  # and never a second receipt
    sandbox[0].lookup_fault = None
    assert (await vnpt.issue("paygov-PG6", receipt())).number == "0000001"


async def test_an_older_tenant_without_get_invoice_by_fkey_is_looked_up_on_portal_service(
    tmp_path: Path,
) -> None:
    peer = VnptSandbox(tt78=False)
    with ThreadedServer(lambda: peer) as server:
        wsdl = f"{server.url}/PublishService.asmx?wsdl"  # the tenant's own WSDL, fetched
        adapter = adapter_for(server.url, publish=wsdl, portal=f"{server.url}/PortalService.asmx?wsdl")
        try:
            assert adapter.missing_operations(["issue", "cancel"]) == []
            first = await adapter.issue("paygov-PG7", receipt())
            assert await adapter.issue("paygov-PG7", receipt()) == first  # ERR:13 → listInvByCusFkey
            assert [r.operation for r in peer.received] == ["ImportAndPublishInv"]
        finally:
            await adapter.aclose()
        (tmp_path / "publish.wsdl").write_bytes(peer.wsdl("publish"))
        (tmp_path / "empty.wsdl").write_bytes(_without_operation(peer.wsdl("business"), "cancelInv"))
        bare = adapter_for(
            server.url, publish=str(tmp_path / "publish.wsdl"), portal=str(tmp_path / "empty.wsdl"),
            business=str(tmp_path / "empty.wsdl"),
        )  # fmt: skip
        assert bare.missing_operations(["issue", "cancel"]) == [
            "GetInvoiceByFkey (PublishService) or listInvByCusFkey (PortalService)",
            "cancelInv (BusinessService)",
        ]
        await bare.aclose()


async def test_a_receipt_without_a_key_or_number_is_never_announced() -> None:
    from lienthong.adapters.einvoice import announce  # noqa: PLC0415
    from lienthong.bus.emit import EventSink  # noqa: PLC0415

    receipt = {"provider": "vnpt", "fkey": "", "pattern": "1/001", "serial": "C26TAA", "number": ""}
    with pytest.raises(RetryableError, match="the receipt has no fkey, number: not announced"):
        await announce(EventSink("code"), "vnpt", None, receipt)  # type: ignore[arg-type]


def test_a_wsdl_file_lacking_an_operation_the_routes_need_is_a_config_error(tmp_path: Path) -> None:
    from lienthong.app import build  # noqa: PLC0415
    from lienthong.config import load_config  # noqa: PLC0415
    from lienthong.errors import ConfigError  # noqa: PLC0415

    peer = VnptSandbox(tt78=False)
    (tmp_path / "publish.wsdl").write_bytes(peer.wsdl("publish"))  # an older tenant: no GetInvoiceByFkey
    (tmp_path / "business.wsdl").write_bytes(_without_operation(peer.wsdl("business"), "cancelInv"))
    (tmp_path / "portal.wsdl").write_bytes(_without_operation(peer.wsdl("portal"), "listInvByCusFkey"))
    config = {
        "auth": {"tokens": []},
        "store": {"path": str(tmp_path / "l.db")},
        "destinations": {
            "vnpt": {
                "kind": "vnpt", "base_url": "https://h56-tt78admin.example", "account": "a", "ac_password": "b",
                "username": "c", "password": "d", "pattern": "1/001", "serial": "C26TAA", "seller_name": "S",
                "seller_tax_code": "3300000000", "publish_wsdl": "publish.wsdl", "business_wsdl": "business.wsdl",
                "portal_wsdl": "portal.wsdl",
            }
        },
        "routes": [
            {"on": "payment.confirmed", "deliver": [{"to": "vnpt", "operation": "issue"}]},
            {"on": "dossier.withdrawn", "deliver": [{"to": "vnpt", "operation": "cancel"}]},
        ],
    }  # fmt: skip
    (tmp_path / "lienthong.yaml").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        build(load_config(tmp_path / "lienthong.yaml", env={}))
    text = str(caught.value)
    assert (
        "destinations.vnpt: the configured WSDLs lack the operation GetInvoiceByFkey (PublishService)" in text
    )
    assert "or listInvByCusFkey (PortalService)" in text
    assert "lack the operation cancelInv (BusinessService)" in text


@pytest.mark.parametrize("text", ["OK:1/001;C26TAA-paygov-PG1_٣", "OK:1/001;C26TAA-paygov-PG1_²"])
def test_a_number_that_is_not_ascii_digits_is_not_a_result(text: str) -> None:
    with pytest.raises(ValueError, match="not a VNPT result"):
        parse_result(text)


def _claimed_with(transaction: str, channel: str = "vcb") -> Any:
    from lienthong.model import Message, StoredEvent  # noqa: PLC0415

    dossier = {"code": "HS-1", "payment": {"transaction_id": transaction, "channel": channel}}
    event = StoredEvent("e1", "payment.confirmed", "U", "2026-12-02T10:00:00+07:00", dossier)
    return Message("m1", "vnpt", "issue", "HS-1", 0, 0, event)


def test_two_payments_never_share_a_receipt_key() -> None:
    from lienthong.adapters.einvoice.vnpt import fkey_for  # noqa: PLC0415

    assert fkey_for(_claimed_with("PG0000000001", "paygov")) == "paygov-PG0000000001"  # plain ids stay
    keys = {fkey_for(_claimed_with(t)) for t in ("FT26/0001", "FT26-0001", "FT26 0001", "FT26_0001")}
    assert len(keys) == 4
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", k) for k in keys)
    assert fkey_for(_claimed_with("FT26/0001")) == fkey_for(_claimed_with("FT26/0001"))  # and stable


async def test_a_look_up_number_that_is_not_ascii_is_unknown_never_an_internal_error(
    vnpt: VnptInvoiceAdapter, sandbox: tuple[VnptSandbox, str]
) -> None:
    await vnpt.issue("paygov-PG8", receipt())
    sandbox[0].invoices["paygov-PG8"].number = "²"
    with pytest.raises(RetryableError, match="not a published one"):
        await vnpt.issue("paygov-PG8", receipt())


@pytest.mark.parametrize(
    "text",
    [
        '<!DOCTYPE r [<!ENTITY a "aaaa">]><r>&a;</r>',
        "<!--" + "x" * 5000 + '--><!DOCTYPE r [<!ENTITY a "a">]><r>&a;</r>',
        "<?pi " + "y" * 5000 + '?><!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>',
        "<r>" + "z" * 1_100_000 + "</r>",
    ],
    ids=["dtd", "dtd-after-a-long-comment", "dtd-after-a-long-pi", "too-large"],
)
def test_inner_xml_with_a_dtd_anywhere_or_too_large_is_refused_unparsed(text: str) -> None:
    from lienthong.adapters.soap import UnsafeXml, safe_xml  # noqa: PLC0415

    with pytest.raises(UnsafeXml):
        safe_xml(text)


async def test_a_wsdl_that_fails_to_load_during_a_look_up_is_a_delivery_error_not_a_crash() -> None:
    """An older tenant's PortalService WSDL is first fetched when ERR:13 needs the look-up: a fetch that
    fails there is judged as a call's failure (retried or refused), not an internal error that
    dead-letters a receipt VNPT says exists."""
    peer = VnptSandbox(tt78=False)
    with ThreadedServer(lambda: peer) as server:
        adapter = adapter_for(
            server.url,
            publish=f"{server.url}/PublishService.asmx?wsdl",
            portal=f"{server.url}/NoSuchService.asmx?wsdl",
        )
        try:
            await adapter.issue("paygov-PG8", receipt())
            with pytest.raises(DeliveryError, match="http 404"):
                await adapter.issue("paygov-PG8", receipt())  # ERR:13: the look-up's WSDL is fetched now
        finally:
            await adapter.aclose()
    assert len(peer.invoices) == 1  # and never a second receipt


@pytest.mark.parametrize("wsdl", ["file:///etc/vnpt/publish.wsdl", "ftp://h56.example/publish.wsdl"])
def test_a_wsdl_given_by_a_scheme_lienthong_does_not_fetch_is_refused_at_load(wsdl: str) -> None:
    """A WSDL is an http(s) URL, fetched, or a file relative to the config: ``file://`` passed the check
    and failed at the first receipt."""
    from lienthong.config import parse_config  # noqa: PLC0415
    from lienthong.errors import ConfigError  # noqa: PLC0415

    text = (
        "destinations:\n  vnpt: {kind: vnpt, base_url: 'https://h56-tt78admin.example', account: a,"
        " ac_password: b, username: c, password: d, pattern: 1/001, serial: C26TAA, seller_name: S,"
        f" seller_tax_code: '3300000000', portal_wsdl: '{wsdl}'}}\n"
    )
    with pytest.raises(ConfigError, match=r"destinations\.vnpt\.portal_wsdl: .*an http\(s\) URL or a file"):
        parse_config(text, file="lienthong.yaml", env={})
    fine = text.replace(wsdl, "https://h56-tt78admin.example/PortalService.asmx?wsdl")
    assert parse_config(fine, file="lienthong.yaml", env={}).destinations["vnpt"]
