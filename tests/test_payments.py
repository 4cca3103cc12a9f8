"""Online fees: MaXacThuc, INIT through the outbox without double payments, confirm and bank callbacks."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from conftest import AUTH, ROUTES, TOKEN, Peers, Running, RunNode, config_dict
from lienthong.adapters.provincial import sign, verify
from lienthong.api.auth import hash_token
from lienthong.cli import main as cli_main
from lienthong.payments import CONFIRM_FIELDS, INIT_FIELDS, HmacFieldsScheme, paygov_code
from lienthong.sandbox.dossiers import generate
from lienthong.sandbox.paygov import PayGovSandbox
from lienthong.sandbox.provincial import ProvincialSandbox
from lienthong.sandbox.vnpt import VnptSandbox
from lienthong.serving import ThreadedServer
from lienthong.store import units

SECRET = "sandbox-paygov-secret"
BANK_SECRET = "vcb-notification-secret"


def test_the_init_code_is_sha256_of_the_pipe_joined_fields_and_the_secret() -> None:
    message = {
        "LoaiBanTin": "INIT",
        "PhienBan": "1.0.6",
        "MaDoiTac": "LIENTHONG-H56",
        "MaThamChieu": "TT-1",
        "SoTien": 125000,
        "LoaiHinhThanhToan": "PAY",
        "MaKenhThanhToan": "1",
        "MaThietBi": "1",
        "NgonNgu": "vi",
        "MaTienTe": "VND",
        "MaNganHang": "",
        "ThongTinGiaoDich": "Thanh toán phí hồ sơ HS-1",
        "ThoiGianGD": "20261123091245",
        "Ip": "127.0.0.1",
    }
    by_hand = "INIT|1.0.6|LIENTHONG-H56|TT-1|125000|PAY|1|1|vi|VND||Thanh toán phí hồ sơ HS-1|20261123091245|127.0.0.1|s3cret"
    assert paygov_code(message, INIT_FIELDS, "s3cret") == hashlib.sha256(by_hand.encode("utf-8")).hexdigest()
    assert paygov_code({**message, "Ip": "127.0.0.2"}, INIT_FIELDS, "s3cret") != paygov_code(
        message, INIT_FIELDS, "s3cret"
    )


def test_the_confirm_code_covers_exactly_the_confirm_fields_in_order() -> None:
    message = {
        "LoaiBanTin": "CONFIRM",
        "MaLoi": "00",
        "MaDoiTac": "LIENTHONG-H56",
        "MaThamChieu": "TT-1",
        "SoTien": "125000",
        "MaTienTe": "VND",
        "MaGiaoDich": "PG0000000001",
        "MaNganHang": "VCB",
        "ThoiGianGD": "20261123091245",
        "ThongTinGiaoDich": "Thanh toán",
        "TrangThaiGD": "1",  # not signed
    }
    by_hand = "CONFIRM|00|LIENTHONG-H56|TT-1|125000|VND|PG0000000001|VCB|20261123091245|Thanh toán|k"
    expected = hashlib.sha256(by_hand.encode("utf-8")).hexdigest()
    assert paygov_code(message, CONFIRM_FIELDS, "k") == expected
    assert paygov_code({**message, "TrangThaiGD": "4"}, CONFIRM_FIELDS, "k") == expected
    assert paygov_code({**message, "SoTien": "125001"}, CONFIRM_FIELDS, "k") != expected


@pytest.fixture
def paygov() -> Iterator[tuple[PayGovSandbox, str]]:
    peer = PayGovSandbox(secret=SECRET)
    with ThreadedServer(lambda: peer) as server:
        peer.base_url = server.url
        yield peer, server.url


def payments_config(tmp_path: Path, peers: Peers, url: str, secret: str = SECRET) -> dict[str, Any]:
    base = config_dict(tmp_path, peers)
    return {
        "destinations": {
            **base["destinations"],
            "paygov": {
                "kind": "paygov",
                "base_url": url,
                "partner_code": "LIENTHONG-H56",
                "secret": secret,
                "timeout_s": 2,
            },
        },
        "routes": [*ROUTES, {"on": "payment.requested", "deliver": [{"to": "paygov", "operation": "INIT"}]}],
        "payments": {"paygov": "paygov", "banks": {"vcb": {"secret": BANK_SECRET}}},
    }


PROVINCE_SECRET = "province-webhook-secret"
SELLER = {"seller_name": "Sở Tư pháp (thử nghiệm)", "seller_tax_code": "3300000000"}


def province_destination(url: str, secret: str = PROVINCE_SECRET) -> dict[str, Any]:
    return {"kind": "provincial", "base_url": url, "secret": secret}


def told_province(tmp_path: Path, peers: Peers, paygov_url: str, province_url: str) -> dict[str, Any]:
    """The payments config, with each payment.confirmed told to the sandbox province at ``province_url``."""
    data = payments_config(tmp_path, peers, paygov_url)
    data["destinations"]["province"] = province_destination(province_url)
    data["routes"].append({"on": "payment.confirmed", "deliver": [{"to": "province", "operation": "notify"}]})
    return data


def vnpt_destination(url: str) -> dict[str, Any]:
    """A vnpt destination holding the sandbox VNPT's own account, pattern and serial."""
    account = {
        "account": "h56admin",
        "ac_password": "sandbox-acpass",
        "username": "h56service",
        "password": "sandbox-pass",
    }
    return {"kind": "vnpt", "base_url": url, **account, "pattern": "1/001", "serial": "C26TAA", **SELLER}


@pytest.fixture
async def node(run_node: RunNode, tmp_path: Path, peers: Peers, paygov: tuple[PayGovSandbox, str]) -> Running:
    running: Running = await run_node(**payments_config(tmp_path, peers, paygov[1]))
    return running


def payment_request(n: int = 0) -> tuple[dict[str, Any], str]:
    event = copy.deepcopy(generate(n + 1, seed=5)[n].events[0])
    dossier = event["dossier"]
    dossier["fees"] = [
        {"code": "LP01", "name": "Lệ phí", "amount": 100_000},
        {"code": "PHI02", "name": "Phí", "amount": 25_000},
    ]
    reference = f"TT-{dossier['code']}"
    dossier["payment"] = {"reference": reference}
    event.update(event_id=f"{event['event_id']}-payreq", type="payment.requested")
    return event, reference


async def requested(node: Running, n: int = 0) -> str:
    event, reference = payment_request(n)
    assert (await node.post(event)).status_code == 202
    await node.settle()
    return reference


async def pay(node: Running, paygov: PayGovSandbox, reference: str, status: str = "1") -> httpx.Response:
    url = f"{node.client.base_url}/v1/payments/paygov/confirm"
    return await asyncio.to_thread(paygov.pay, reference, url, status)


async def test_a_requested_payment_gets_a_pay_url_and_a_good_confirm_becomes_one_event(
    node: Running, paygov: tuple[PayGovSandbox, str]
) -> None:
    reference = await requested(node)
    state = (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()
    assert state["status"] == "initiated"
    assert state["amount"] == 125_000
    assert state["pay_url"] == f"{paygov[1]}/pay/{reference}"
    answer = await pay(node, paygov[0], reference)
    sent = paygov[0].confirmation(reference)
    reply = answer.json()
    assert {k: reply[k] for k in ("MaLoi", "MoTaLoi", "MaDoiTac", "MaXacThuc")} == {
        "MaLoi": "00",
        "MoTaLoi": "Thành công",
        "MaDoiTac": "LIENTHONG-H56",
        "MaXacThuc": sent["MaXacThuc"],  # echoed, as a public receiver does
    }
    assert len(reply["ThoiGianGD"]) == 14
    again = await pay(node, paygov[0], reference)  # the platform repeats callbacks it is unsure of
    assert again.json()["MaLoi"] == "00"
    state = (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()
    assert state["status"] == "paid"
    assert state["transaction_id"].startswith("PG")
    assert node.sample("lienthong_events_received_total", type="payment.confirmed", outcome="accepted") == 1
    verdicts = [(c.verdict, c.status) for c in await node.node.store.run(units.callbacks, 100, None)]
    assert verdicts == [("repeat", "paid"), ("accepted", "paid")]


async def test_a_bad_integrity_code_is_refused_recorded_and_never_trusted(
    node: Running, paygov: tuple[PayGovSandbox, str]
) -> None:
    reference = await requested(node)
    forged = {**paygov[0].confirmation(reference), "SoTien": 1}
    answer = await node.client.post("/v1/payments/paygov/confirm", json=forged)
    assert answer.status_code == 403
    assert answer.json()["MaLoi"] == "07"
    (record,) = await node.node.store.run(units.callbacks, 100, None)
    assert (record.verdict, record.reference) == ("bad_signature", reference)
    assert node.sample("lienthong_events_received_total", type="payment.confirmed", outcome="accepted") == 0
    state = (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()
    assert state["status"] == "initiated"


async def test_pending_and_failed_payments_are_recorded_without_an_event(
    node: Running, paygov: tuple[PayGovSandbox, str]
) -> None:
    reference = await requested(node)
    assert (await pay(node, paygov[0], reference, "3")).json()["MaLoi"] == "00"
    assert (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()["status"] == "pending"
    assert (await pay(node, paygov[0], reference, "4")).json()["MaLoi"] == "00"
    assert (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()["status"] == "failed"
    assert node.sample("lienthong_events_received_total", type="payment.confirmed", outcome="accepted") == 0


async def test_unknown_references_amount_mismatches_and_garbage_are_refused(
    node: Running, paygov: tuple[PayGovSandbox, str]
) -> None:
    reference = await requested(node)
    peer = paygov[0]
    peer.payments["TT-NOBODY"] = copy.copy(peer.payments[reference])
    peer.payments["TT-NOBODY"].reference = "TT-NOBODY"
    unknown = await node.client.post("/v1/payments/paygov/confirm", json=peer.confirmation("TT-NOBODY"))
    assert (unknown.status_code, unknown.json()["MaLoi"]) == (404, "06")
    peer.payments[reference].amount = 1_000
    mismatch = await node.client.post("/v1/payments/paygov/confirm", json=peer.confirmation(reference))
    assert (mismatch.status_code, mismatch.json()["MaLoi"]) == (409, "08")
    garbage = await node.client.post("/v1/payments/paygov/confirm", content=b"{not json")
    assert (garbage.status_code, garbage.json()["MaLoi"]) == (400, "01")
    verdicts = [c.verdict for c in await node.node.store.run(units.callbacks, 100, None)]
    assert verdicts == ["invalid", "amount_mismatch", "unknown_reference"]


async def test_a_retried_init_never_creates_a_second_payment(
    node: Running, paygov: tuple[PayGovSandbox, str]
) -> None:
    paygov[0].inject("drop")  # the platform creates the payment, then the connection drops
    reference = await requested(node)
    assert list(paygov[0].payments) == [reference]
    assert [r.operation for r in paygov[0].received] == ["INIT"]
    state = (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()
    assert state["status"] == "initiated"
    assert state["pay_url"].endswith(reference)


async def test_an_init_for_a_reference_the_platform_holds_finds_it_instead(
    node: Running, paygov: tuple[PayGovSandbox, str]
) -> None:
    event, reference = payment_request(1)
    from lienthong.sandbox.paygov import SandboxPayment  # noqa: PLC0415

    paygov[0].payments[reference] = SandboxPayment(reference, 125_000, "made by an earlier node")
    assert (await node.post(event)).status_code == 202
    await node.settle()
    state = (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()
    assert state["status"] == "initiated"
    assert paygov[0].received == []  # INIT answered "duplicate": nothing new was created


async def test_a_refused_init_is_a_dead_letter_with_the_platforms_code(
    run_node: RunNode, tmp_path: Path, peers: Peers, paygov: tuple[PayGovSandbox, str]
) -> None:
    running: Running = await run_node(**payments_config(tmp_path, peers, paygov[1], secret="wrong-secret"))
    event, _ = payment_request()
    (message_id,) = (await running.post(event)).json()["message_ids"]
    await running.settle()
    view = await running.node.store.run(units.message, message_id)
    assert view is not None
    assert view.status == "dead"
    assert "payment platform refused INIT: Sai mã xác thực (http 200) (remote code 07)" in str(
        view.last_error
    )


def bank_notice(reference: str, **changes: Any) -> dict[str, Any]:
    return {
        "transaction_id": "VCB-778899",
        "reference": reference,
        "amount": 125000,
        "paid_at": "2026-11-23T09:30:00+07:00",
        "status": "paid",
        **changes,
    }


async def test_a_bank_notification_with_a_good_hmac_confirms_the_payment(node: Running) -> None:
    reference = await requested(node)
    notice = bank_notice(reference)
    by_hand = f"VCB-778899|{reference}|125000|2026-11-23T09:30:00+07:00|paid"
    signature = hmac.new(BANK_SECRET.encode(), by_hand.encode(), hashlib.sha256).hexdigest()
    assert (
        HmacFieldsScheme(
            "vcb", BANK_SECRET, ["transaction_id", "reference", "amount", "paid_at", "status"]
        ).sign(notice)
        == signature
    )
    answer = await node.client.post(
        "/v1/payments/banks/vcb/notify", json=notice, headers={"x-signature": signature}
    )
    assert answer.status_code == 200
    assert (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()["status"] == "paid"
    assert node.sample("lienthong_events_received_total", type="payment.confirmed", outcome="accepted") == 1


async def test_a_bank_notification_with_a_bad_hmac_or_an_unknown_bank_is_refused(node: Running) -> None:
    reference = await requested(node)
    notice = bank_notice(reference)
    bad = await node.client.post(
        "/v1/payments/banks/vcb/notify", json=notice, headers={"x-signature": "00" * 32}
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (403, "bad_signature")
    unknown = await node.client.post(
        "/v1/payments/banks/acb/notify", json=notice, headers={"x-signature": "00"}
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_bank")
    assert (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()["status"] == "initiated"


def test_the_provincial_signature_verifies_only_the_same_recent_body() -> None:
    body = b'{"kind":"payment.confirmed"}'
    header = sign(body, b"k", 1_800_000_000)
    by_hand = hmac.new(b"k", b"1800000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1800000000,v1={by_hand}"
    assert verify(body, header, b"k", now=1_800_000_100)
    assert not verify(body + b" ", header, b"k", now=1_800_000_100)  # tampered
    assert not verify(body, header, b"other", now=1_800_000_100)  # wrong key
    assert not verify(body, header, b"k", now=1_800_000_400)  # too old: a replay
    assert not verify(body, "v1=" + by_hand, b"k", now=1_800_000_000)  # no timestamp


async def test_a_confirmed_payment_is_told_to_the_province_once_signed(
    run_node: RunNode, tmp_path: Path, peers: Peers, paygov: tuple[PayGovSandbox, str]
) -> None:
    province = ProvincialSandbox(secret=PROVINCE_SECRET)
    with ThreadedServer(lambda: province) as server:
        running: Running = await run_node(**told_province(tmp_path, peers, paygov[1], server.url))
        reference = await requested(running)
        await pay(running, paygov[0], reference)
        await pay(running, paygov[0], reference)  # repeated by the platform: still one notice
        await running.settle()
        (notice,) = province.received
        assert notice.body["kind"] == "payment.confirmed"
        assert notice.body["reference"] == reference
        assert notice.body["amount"] == 125_000
        assert notice.body["transaction_id"] == paygov[0].payments[reference].transaction_id
        assert province.refused == 0


async def test_a_province_refusing_the_signature_makes_a_dead_letter(
    run_node: RunNode, tmp_path: Path, peers: Peers, paygov: tuple[PayGovSandbox, str]
) -> None:
    province = ProvincialSandbox(secret="the-province-has-another-key")
    with ThreadedServer(lambda: province) as server:
        running: Running = await run_node(**told_province(tmp_path, peers, paygov[1], server.url))
        reference = await requested(running)
        await pay(running, paygov[0], reference)
        await running.settle()
        (dead,) = await running.node.store.run(units.dead_letters, "province", 100)
        assert "http 401" in str(dead.last_error)
        assert province.refused == 1


async def test_a_paid_fee_gets_one_vnpt_receipt_and_the_province_hears_its_number(
    run_node: RunNode, tmp_path: Path, peers: Peers, paygov: tuple[PayGovSandbox, str]
) -> None:
    province = ProvincialSandbox(secret=PROVINCE_SECRET)
    vnpt = VnptSandbox()
    with ThreadedServer(lambda: province) as province_srv, ThreadedServer(lambda: vnpt) as vnpt_srv:
        data = payments_config(tmp_path, peers, paygov[1])
        data["destinations"]["province"] = province_destination(province_srv.url)
        data["destinations"]["vnpt"] = vnpt_destination(vnpt_srv.url)
        data["routes"] += [
            {"on": "payment.confirmed", "deliver": [{"to": "vnpt", "operation": "issue"}]},
            {
                "on": "receipt.issued",
                "deliver": [
                    {"to": "province", "operation": "notify", "mapping": "bundled:provincial_receipt"}
                ],
            },
        ]
        running: Running = await run_node(**data)
        vnpt.inject("drop")  # the first publish succeeds at VNPT but its answer is lost: a retry follows
        reference = await requested(running)
        await pay(running, paygov[0], reference)
        await running.settle()
        (invoice,) = vnpt.invoices.values()
        assert invoice.fkey == f"paygov-{paygov[0].payments[reference].transaction_id}"
        (notice,) = province.received
        assert notice.body["kind"] == "receipt.issued"
        assert (notice.body["number"], notice.body["serial"]) == (invoice.number, "C26TAA")
        assert (
            running.sample(
                "lienthong_deliveries_total", destination="vnpt", operation="issue", outcome="retry"
            )
            >= 1
        )


async def test_receipt_events_are_refused_from_outside(node: Running) -> None:
    event, _ = payment_request()
    event["type"] = "receipt.issued"
    answer = await node.post(event)
    assert answer.status_code == 422
    assert answer.json()["error"] == {
        "code": "invalid_event",
        "message": "receipt.issued events are raised by lienthong, not accepted from outside",
        "path": "type",
    }


async def test_a_dead_letter_is_told_to_the_province_for_a_person_to_look_at(
    run_node: RunNode, tmp_path: Path, peers: Peers
) -> None:
    province = ProvincialSandbox(secret=PROVINCE_SECRET)
    with ThreadedServer(lambda: province) as server:
        base = config_dict(tmp_path, peers)
        running: Running = await run_node(
            destinations={
                **base["destinations"],
                "province": province_destination(server.url),
            },
            routes=[
                {"on": "dossier.received", "deliver": [{"to": "portal", "operation": "DongBoHoSoMC"}]},
                {
                    "on": "delivery.failed",
                    "deliver": [
                        {"to": "province", "operation": "notify", "mapping": "bundled:provincial_failure"}
                    ],
                },
            ],
        )
        event = next(
            s.events[0]
            for s in generate(40, unknown_share=0.5)
            if s.events[0]["dossier"]["procedure"]["code"] == "9.999999"
        )
        (message_id,) = (await running.post(event)).json()["message_ids"]
        await running.settle()
        (notice,) = province.received
        assert notice.body["kind"] == "delivery.failed"
        assert (notice.body["message_id"], notice.body["destination"], notice.body["failed_event"]) == (
            message_id,
            "portal",
            event["event_id"],
        )
        assert "remote code 400" in notice.body["error"]
        refused = await running.post({**event, "event_id": "x-1", "type": "delivery.failed"})
        assert refused.status_code == 422


class GatewayInTheWay(PayGovSandbox):
    """Answers every message 200 with JSON that is not the platform's (a proxy's health page)."""

    async def _message(self, request: Any) -> Any:
        from lienthong.sandbox.base import Answer  # noqa: PLC0415

        return Answer.json({"status": "UP"})


async def test_an_answer_without_maloi_is_retried_never_taken_for_a_payment(
    run_node: RunNode, tmp_path: Path, peers: Peers
) -> None:
    platform = GatewayInTheWay(secret=SECRET)
    with ThreadedServer(lambda: platform) as server:
        running: Running = await run_node(**payments_config(tmp_path, peers, server.url))
        event, reference = payment_request()
        (message_id,) = (await running.post(event)).json()["message_ids"]
        await running.settle()
        view = await running.node.store.run(units.message, message_id)
        assert view is not None
        assert view.status == "dead"
        assert "INIT answer has neither MaLoi nor error_code" in str(view.history[0].error)
        assert "QUERY answer has neither MaLoi nor error_code" in str(
            view.last_error
        )  # retries look the payment up first
        assert "gave up after 4 attempts" in str(view.last_error)
        assert await running.node.store.run(units.payment, reference) is None


# -- Attacks on money (issue 10): each of these got through before -------------------------------------
def signed_bank(notice: dict[str, Any]) -> dict[str, str]:
    fields = ["transaction_id", "reference", "amount", "paid_at", "status"]
    return {"x-signature": HmacFieldsScheme("vcb", BANK_SECRET, fields).sign(notice)}


async def test_a_second_payment_of_a_paid_reference_is_a_finding_never_a_second_receipt(
    run_node: RunNode, tmp_path: Path, peers: Peers, paygov: tuple[PayGovSandbox, str]
) -> None:
    province, vnpt = ProvincialSandbox(secret=PROVINCE_SECRET), VnptSandbox()
    with ThreadedServer(lambda: province) as province_srv, ThreadedServer(lambda: vnpt) as vnpt_srv:
        data = told_province(tmp_path, peers, paygov[1], province_srv.url)
        data["destinations"]["vnpt"] = vnpt_destination(vnpt_srv.url)
        data["routes"].append({"on": "payment.confirmed", "deliver": [{"to": "vnpt", "operation": "issue"}]})
        running: Running = await run_node(**data)
        reference = await requested(running)
        assert (await pay(running, paygov[0], reference)).json()["MaLoi"] == "00"
        first = paygov[0].payments[reference].transaction_id

        paygov[0].payments[reference].transaction_id = ""  # the platform takes the money a second time
        again = await pay(running, paygov[0], reference)
        notice = bank_notice(reference, transaction_id="VCB-1")  # and a bank a third time
        bank = await running.client.post(
            "/v1/payments/banks/vcb/notify", json=notice, headers=signed_bank(notice)
        )
        await running.settle()

        assert again.status_code == 200  # taken: the platform need not send it again
        assert (bank.status_code, bank.json()) == (200, {"status": "duplicate_payment"})
        assert len(vnpt.invoices) == 1
        assert [r.operation for r in province.received] == ["payment.confirmed"]
        state = (await running.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()
        assert (state["status"], state["transaction_id"], state["channel"]) == ("paid", first, "paygov")
        findings = await running.node.store.run(units.payment_findings, 100)
        assert sorted((f.kind, f.channel, f.reference) for f in findings) == [
            ("duplicate_payment", "paygov", reference),
            ("duplicate_payment", "vcb", reference),
        ]
        verdicts = [c.verdict for c in await running.node.store.run(units.callbacks, 100, reference)]
        assert verdicts == ["duplicate_payment", "duplicate_payment", "accepted"]


async def test_a_paid_payment_never_goes_back_to_pending_or_failed(
    node: Running, paygov: tuple[PayGovSandbox, str]
) -> None:
    reference = await requested(node)
    await pay(node, paygov[0], reference)
    pending = await pay(node, paygov[0], reference, "3")
    failed = await pay(node, paygov[0], reference, "4")
    notice = bank_notice(
        reference, transaction_id=paygov[0].payments[reference].transaction_id, status="failed"
    )
    bank = await node.client.post("/v1/payments/banks/vcb/notify", json=notice, headers=signed_bank(notice))

    assert [(r.status_code, r.json()["MaLoi"]) for r in (pending, failed)] == [(409, "10"), (409, "10")]
    assert "already paid" in failed.json()["MoTaLoi"]
    # The bank's own transaction of the same id is another transaction (channel and id): old news, taken.
    assert (bank.status_code, bank.json()) == (200, {"status": "stale"})
    assert (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()["status"] == "paid"
    verdicts = [(c.verdict, c.status) for c in await node.node.store.run(units.callbacks, 100, None)]
    assert verdicts[:3] == [("stale", "failed"), ("contradiction", "failed"), ("contradiction", "pending")]


async def test_another_attempts_failure_heard_after_the_payment_is_taken_and_changes_nothing(
    node: Running, paygov: tuple[PayGovSandbox, str]
) -> None:
    """Out of order: the citizen's first try failed, the second paid, and the platform delivers the failure
    last. It is news of another transaction, not the paying one going backwards: answered as taken (the
    platform must not resend it forever), recorded as ``stale``, and the payment stays paid, once."""
    reference = await requested(node)
    paying = paygov[0]
    assert (await pay(node, paying, reference)).json()["MaLoi"] == "00"
    paid_by = paying.payments[reference].transaction_id
    paying.payments[reference].transaction_id = ""  # the sandbox names the late callback's attempt anew
    late = await pay(node, paying, reference, "4")
    assert paying.payments[reference].transaction_id != paid_by

    assert (late.status_code, late.json()["MaLoi"]) == (200, "00")
    state = (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()
    assert (state["status"], state["transaction_id"]) == ("paid", paid_by)
    recorded = await node.node.store.run(units.callbacks, 100, reference)
    assert [(c.verdict, c.status) for c in recorded] == [("stale", "failed"), ("accepted", "paid")]
    late_id = paying.payments[reference].transaction_id
    assert recorded[0].detail == (
        f"failed of another transaction (paygov {late_id}): the payment stays paid through paygov ({paid_by})"
    )


async def test_another_transactions_failure_of_another_amount_is_refused_once_paid_too(node: Running) -> None:
    """Found in review: the stale path skipped the amount check a payment not yet paid makes."""
    reference = await requested(node)
    paid = bank_notice(reference)
    url = "/v1/payments/banks/vcb/notify"
    assert (await node.client.post(url, json=paid, headers=signed_bank(paid))).json() == {
        "status": "accepted"
    }
    other = bank_notice(reference, transaction_id="VCB-OTHER", amount=1, status="failed")
    answer = await node.client.post(url, json=other, headers=signed_bank(other))
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "amount_mismatch")
    verdicts = [c.verdict for c in await node.node.store.run(units.callbacks, 5, reference)]
    assert verdicts == ["amount_mismatch", "accepted"]


async def test_a_failed_attempt_may_be_followed_by_a_payment_but_pending_never_follows_failed(
    node: Running, paygov: tuple[PayGovSandbox, str]
) -> None:
    reference = await requested(node)
    assert (await pay(node, paygov[0], reference, "4")).status_code == 200
    assert (await pay(node, paygov[0], reference, "3")).status_code == 409
    paygov[0].payments[reference].transaction_id = ""  # the citizen tries again, and pays
    assert (await pay(node, paygov[0], reference, "1")).status_code == 200
    assert (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()["status"] == "paid"


async def test_a_transaction_id_reused_with_other_content_is_refused_and_recorded(node: Running) -> None:
    reference = await requested(node)
    notice = bank_notice(reference)
    assert (
        await node.client.post("/v1/payments/banks/vcb/notify", json=notice, headers=signed_bank(notice))
    ).status_code == 200
    changed = bank_notice(reference, paid_at="2026-11-24T10:00:00+07:00")
    answer = await node.client.post(
        "/v1/payments/banks/vcb/notify", json=changed, headers=signed_bank(changed)
    )

    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "transaction_reused")
    latest = (await node.node.store.run(units.callbacks, 100, None))[0]
    assert (latest.verdict, latest.reference, latest.transaction_id) == (
        "transaction_reused",
        reference,
        "VCB-778899",
    )


async def test_a_refused_callback_records_what_identifies_it(node: Running) -> None:
    reference = await requested(node)
    notice = bank_notice(reference, transaction_id="VCB-FORGED")
    await node.client.post("/v1/payments/banks/vcb/notify", json=notice, headers={"x-signature": "00" * 32})
    (record,) = await node.node.store.run(units.callbacks, 100, None)
    body = orjson.dumps(notice)
    assert (record.verdict, record.reference, record.transaction_id) == (
        "bad_signature",
        reference,
        "VCB-FORGED",
    )
    assert record.source == "127.0.0.1"
    assert (record.body_bytes, record.body_sha256) == (len(body), hashlib.sha256(body).hexdigest())


def test_the_callbacks_command_lists_every_callback_with_its_verdict(
    tmp_path: Path, peers: Peers, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "lienthong.yaml"
    data = config_dict(tmp_path, peers, **payments_config(tmp_path, peers, "http://127.0.0.1:9"))
    config.write_text(orjson.dumps(data).decode())
    from lienthong.payments.records import CallbackRecord  # noqa: PLC0415
    from lienthong.store.sqlite import SqliteBackend  # noqa: PLC0415

    store = SqliteBackend(tmp_path / "lienthong.db")
    store.begin()
    store.payments.record_callback(
        CallbackRecord(
            1_800_000_000_000,
            "vcb",
            "TT-1",
            "VCB-9",
            "bad_signature",
            "",
            "10.0.0.9",
            "ab" * 32,
            120,
            "the integrity code does not match",
        )
    )
    store.commit()
    store.close()

    assert cli_main(["payments", "callbacks", str(config), "--reference", "TT-1"]) == 0
    out = capsys.readouterr().out
    assert "vcb      bad_signature" in out
    assert "ref=TT-1  txn=VCB-9  from=10.0.0.9  120 B sha256=abababababab" in out
    assert cli_main(["payments", "findings", str(config)]) == 0


async def test_hostile_callbacks_cannot_fill_the_disk_nor_lock_the_platform_out(
    node: Running, tmp_path: Path, paygov: tuple[PayGovSandbox, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lienthong.payments.callbacks")
    reference = await requested(node)
    before = sum(p.stat().st_size for p in tmp_path.glob("lienthong.db*"))
    huge = {"MaThamChieu": "X" * 4_000_000, "MaXacThuc": "0" * 64}
    big = await node.client.post("/v1/payments/paygov/confirm", json=huge)
    assert (big.status_code, big.json()["MaLoi"]) == (413, "11")
    (oversized,) = await node.node.store.run(units.callbacks, 100, None)
    assert (oversized.verdict, oversized.body_bytes) == ("too_large", 0)  # refused on its Content-Length
    long_ref = bank_notice("R" * 10_000)  # under the body cap, but a reference nobody has
    started = time.monotonic()
    answers = [
        (
            await node.client.post(
                "/v1/payments/banks/vcb/notify", json=long_ref, headers={"x-signature": "0"}
            )
        ).status_code
        for _ in range(60)
    ]
    refilled = math.ceil((time.monotonic() - started) * 30 / 60)  # the budget refills as time passes
    assert set(answers) == {403}  # every one refused, as what it is
    records = await node.node.store.run(units.callbacks, 1000, None)
    # 30 recorded refusals a minute per address (the oversized one was the first); the rest only counted
    assert 30 <= len(records) <= 30 + refilled
    assert max(len(r.reference) for r in records) <= 64
    unrecorded = node.sample("lienthong_payment_callbacks_total", channel="vcb", verdict="unrecorded")
    assert unrecorded == 61 - len(records)
    logged = [r for r in caplog.records if r.name == "lienthong.payments.callbacks"]
    assert len(logged) == len(records)  # nor does the log: a refusal past the budget is only counted
    after = sum(p.stat().st_size for p in tmp_path.glob("lienthong.db*"))
    # 4.6 MB were sent; the store (with its write-ahead log, a few pages per commit) grows by far less
    assert after - before < 1_000_000, f"the store grew by {after - before} bytes"

    paid = await pay(node, paygov[0], reference)  # the platform, from the same address, is still heard
    assert (paid.status_code, paid.json()["MaLoi"]) == (200, "00")
    assert (await node.node.store.run(units.callbacks, 100, None))[0].verdict == "accepted"


async def test_init_carries_the_receipt_information_and_the_platforms_bearer_token(
    run_node: RunNode, tmp_path: Path, peers: Peers
) -> None:
    peer = PayGovSandbox(secret=SECRET, access_token="platform-issued-token")
    with ThreadedServer(lambda: peer) as server:
        peer.base_url = server.url
        data = payments_config(tmp_path, peers, server.url)
        data["destinations"]["paygov"]["auth"] = {"kind": "bearer", "token": "platform-issued-token"}
        data["routes"][-1]["deliver"][0]["params"] = {"beneficiary_account": "1234567890"}
        running: Running = await run_node(**data)
        reference = await requested(running)

        (init,) = peer.received
        info = init.body["ThongTinBienLai"]
        event, _ = payment_request()
        expected = (event["dossier"]["code"], event["unit_code"], "1234567890")
        assert (info["MaHoSo"], info["MaDonVi"], info["TKThuHuong"]) == expected
        assert [f["SoTien"] for f in info["PhiLePhi"]] == [100_000, 25_000]
        assert (await running.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()["pay_url"]


async def test_init_without_the_platforms_token_is_refused_and_not_retried(
    run_node: RunNode, tmp_path: Path, peers: Peers
) -> None:
    peer = PayGovSandbox(secret=SECRET, access_token="platform-issued-token")
    with ThreadedServer(lambda: peer) as server:
        running: Running = await run_node(**payments_config(tmp_path, peers, server.url))
        event, _ = payment_request()
        (message_id,) = (await running.post(event)).json()["message_ids"]
        await running.settle()
        view = await running.node.store.run(units.message, message_id)
        assert view is not None
        assert (view.status, view.attempts) == ("dead", 1)
        assert "http 401" in str(view.last_error)


async def test_no_caller_can_confirm_a_payment_or_take_lienthongs_event_ids(
    node: Running, paygov: tuple[PayGovSandbox, str]
) -> None:
    reference = await requested(node)
    event, _ = payment_request()
    forged = {**event, "event_id": "my-own-id", "type": "payment.confirmed"}
    squat = {**event, "event_id": "lienthong:paid:paygov:PG0000000001", "type": "dossier.status_changed"}

    confirmed = await node.post(forged)
    squatted = await node.post(squat)
    paid = await pay(node, paygov[0], reference)

    assert (confirmed.status_code, confirmed.json()["error"]["path"]) == (422, "type")
    assert (squatted.status_code, squatted.json()["error"]["path"]) == (422, "event_id")
    assert "lienthong's own" in squatted.json()["error"]["message"]
    assert (paid.status_code, paid.json()["MaLoi"]) == (200, "00")
    assert node.sample("lienthong_events_received_total", type="payment.confirmed", outcome="accepted") == 1


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"paid_at": "2026-11-23T09:30:00"}, "paid_at must be ISO 8601 with its UTC offset"),
        ({"paid_at": "2026-11-23"}, "paid_at must be ISO 8601 with its UTC offset"),
        ({"amount": "125000.0"}, "amount must be a whole number"),
    ],
)
async def test_a_signed_notification_that_cannot_be_a_payment_is_refused_and_recorded(
    node: Running, changes: dict[str, str], why: str
) -> None:
    reference = await requested(node)
    notice = bank_notice(reference, **changes)
    answer = await node.client.post("/v1/payments/banks/vcb/notify", json=notice, headers=signed_bank(notice))
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid")
    assert why in answer.json()["error"]["message"]
    assert (await node.node.store.run(units.callbacks, 100, None))[0].verdict == "invalid"


@pytest.mark.parametrize("transaction", ["GD 0001", "T" * 125, "GD/0001 đã chuyển"])
async def test_a_transaction_id_of_any_text_still_confirms_the_payment_once(
    node: Running, transaction: str
) -> None:
    reference = await requested(node)
    notice = bank_notice(reference, transaction_id=transaction)
    for _ in range(2):
        answer = await node.client.post(
            "/v1/payments/banks/vcb/notify", json=notice, headers=signed_bank(notice)
        )
        assert answer.status_code == 200, answer.text
    assert (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()["status"] == "paid"
    assert node.sample("lienthong_events_received_total", type="payment.confirmed", outcome="accepted") == 1


async def test_an_unsigned_trangthaigd_cannot_unpay_a_signed_paid_confirm(
    node: Running, paygov: tuple[PayGovSandbox, str]
) -> None:
    reference = await requested(node)
    confirm = {**paygov[0].confirmation(reference), "TrangThaiGD": "4"}  # MaLoi 00, signed; TrangThaiGD not
    answer = await node.client.post("/v1/payments/paygov/confirm", json=confirm)
    assert answer.json()["MaLoi"] == "00"
    assert (await node.client.get(f"/v1/payments/{reference}", headers=AUTH)).json()["status"] == "paid"


async def test_a_caller_cannot_read_another_callers_payment(
    run_node: RunNode, tmp_path: Path, peers: Peers, paygov: tuple[PayGovSandbox, str]
) -> None:
    data = payments_config(tmp_path, peers, paygov[1])
    other = "token-of-another-district-system"
    data["auth"] = {
        "tokens": [
            {"name": "tests", "sha256": hash_token(TOKEN)},
            {"name": "district", "sha256": hash_token(other)},
        ]
    }
    running: Running = await run_node(**data)
    reference = await requested(running)
    mine = await running.client.get(f"/v1/payments/{reference}", headers=AUTH)
    theirs = await running.client.get(
        f"/v1/payments/{reference}", headers={"authorization": f"Bearer {other}"}
    )
    assert mine.status_code == 200
    assert "caller" not in mine.json()
    assert (theirs.status_code, theirs.json()["error"]["code"]) == (404, "not_found")


async def test_a_paygov_confirm_to_a_node_without_the_platform_is_not_found(
    run_node: RunNode, tmp_path: Path, peers: Peers
) -> None:
    data = payments_config(tmp_path, peers, "http://127.0.0.1:9")
    data["payments"] = {"banks": {"vcb": {"secret": BANK_SECRET}}}  # banks only
    running: Running = await run_node(**data)
    answer = await running.client.post("/v1/payments/paygov/confirm", json={"MaLoi": "00"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found")


async def test_a_signature_that_is_not_ascii_is_refused_as_a_bad_signature_not_a_500(node: Running) -> None:
    reference = await requested(node)
    forged = {"MaThamChieu": reference, "MaXacThuc": "é" * 64, "MaDoiTac": "x"}
    answer = await node.client.post("/v1/payments/paygov/confirm", json=forged)
    assert answer.status_code != 500, answer.text
    assert answer.json()["MaLoi"] != "00"
    bank = await node.client.post(
        "/v1/payments/banks/vcb/notify",
        json=bank_notice(reference),
        headers={b"x-signature": "é".encode() * 32},  # bytes a server decodes as latin-1 text
    )
    assert bank.status_code == 403, bank.text
    verdicts = {r.verdict for r in await node.node.store.run(units.callbacks, 10, None)}
    assert verdicts == {"bad_signature"}
