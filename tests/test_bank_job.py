"""The bank-reconcile job end to end, through ``lienthong reconcile``: a real store, real statement files,
the sandbox payment platform answering QUERY over loopback, and the reports a person reads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from lienthong.cli import main
from lienthong.config import load_config
from lienthong.payments.records import PaymentRecord
from lienthong.sandbox.paygov import PayGovSandbox, SandboxPayment
from lienthong.scheduler.schedule import zone
from lienthong.serving import ThreadedServer
from lienthong.store import build_store, units
from test_bank_statements import balance, document, entry, statement

SECRET = "sandbox-paygov-secret"
HCM = zone("Asia/Ho_Chi_Minh")


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).replace(tzinfo=HCM).timestamp() * 1000)


def paid(reference: str, amount: int, at: str, status: str = "paid") -> PaymentRecord:
    dossier = orjson.dumps({"code": f"HS-{reference}"}).decode()
    return PaymentRecord(
        reference, f"HS-{reference}", "U1", amount, dossier, "https://pay", status, "PG1", ms(at)
    )


def credit(amount: str, reference: str, *, text: str = "") -> str:
    details = (
        f"<NtryDtls><TxDtls><Refs><EndToEndId>{reference}</EndToEndId></Refs>"
        f"<RmtInf><Ustrd>{text or reference}</Ustrd></RmtInf></TxDtls></NtryDtls>"
    )
    return entry("08", amount, details=details)


@pytest.fixture
def paygov() -> Iterator[tuple[PayGovSandbox, str]]:
    peer = PayGovSandbox(secret=SECRET)
    with ThreadedServer(lambda: peer) as server:
        peer.base_url = server.url
        yield peer, server.url


def setup(tmp_path: Path, paygov_url: str) -> Path:
    config = tmp_path / "lienthong.yaml"
    config.write_text(
        f"""\
store: {{path: "{tmp_path / "store.db"}"}}
destinations:
  paygov: {{kind: paygov, base_url: "{paygov_url}", partner_code: LIENTHONG-H56, secret: {SECRET}, timeout_s: 2}}
payments: {{paygov: paygov}}
scheduler:
  jobs:
    bank-reconcile: {{cron: "0 2 * * *", time_limit_s: 60, retries: 0}}
bank_statements:
  inbox: inbox
  reports_dir: reports
  matching: {{date_tolerance_days: 1}}
"""
    )
    seeded = [
        paid("LT-MATCHED", 150_000, "2026-12-01T09:00"),
        paid("LT-SHORT", 20_000, "2026-12-01T10:00"),
        paid("LT-NEVER", 30_000, "2026-12-01T11:00"),
        paid("LT-TWICE", 40_000, "2026-12-01T12:00"),
        paid("LT-OLD", 60_000, "2026-11-20T12:00"),  # another window's, beyond the tolerance
        paid("LT-LATE", 70_000, "2026-12-02T03:00"),  # the next window's, within the tolerance: matched
        paid("LT-WAITING", 80_000, "2026-12-01T08:00", status="pending"),
    ]
    store = build_store(load_config(config, env={}).store, init=True, as_node=False)

    async def seed() -> None:
        store.open()
        try:
            for payment in seeded:
                await store.run(units.save_payment, payment)
        finally:
            store.close()

    asyncio.run(seed())
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    notices = [
        credit("150000", "LT-MATCHED"),
        credit("25000", "LT-SHORT"),
        credit("40000", "LT-TWICE"),
        credit("40000", "FT-OTHER", text="chuyen tien LT-TWICE lan 2"),
        credit("7000", "SOMEONE"),
        credit("70000", "LT-LATE"),
    ]
    (inbox / "vcb-2026-12-01.xml").write_text(
        document("08", statement("08", "\n".join(notices), kind="054"), kind="054")
    )
    wrong = balance("OPBD", "1000000") + entry("08", "5000") + balance("CLBD", "1009000")
    (inbox / "vcb-eod.xml").write_text(document("08", statement("08", wrong, stmt_id="EOD-1201")))
    return config


def test_a_run_reports_every_kind_of_finding_and_moves_the_files(
    tmp_path: Path, paygov: tuple[PayGovSandbox, str], capsys: pytest.CaptureFixture[str]
) -> None:
    peer, url = paygov
    peer.payments["LT-WAITING"] = SandboxPayment(
        "LT-WAITING", 80_000, "phi", status="1", transaction_id="PG9"
    )
    config = setup(tmp_path, url)
    code = main(["reconcile", str(config), "bank-reconcile", "--window", "2026-12-01T12:00"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "run bank-reconcile:2026-12-02T02:00+07:00" in out
    assert "succeeded" in out
    findings_path = next(tmp_path.glob("reports/bank-reconcile/*/findings.json"))
    data = json.loads(findings_path.read_text())
    # LT-MATCHED, LT-TWICE's first payment, and LT-LATE from the margin
    assert data["counts"]["matched"] == 3
    assert data["counts"]["unknown_in_bank"] == 2  # SOMEONE's 7,000 and the statement's unexplained 5,000
    by_kind = {(f["kind"], f["reference"]) for f in data["findings"]}
    assert by_kind == {
        ("amount_mismatch", "LT-SHORT"),
        ("missing_from_bank", "LT-NEVER"),
        ("duplicate_payment", "LT-TWICE"),
        ("unknown_in_bank", ""),
        ("statement_does_not_roll_forward", "EOD-1201"),
        ("unsettled_payment", "LT-WAITING"),
    }
    short = next(f for f in data["findings"] if f["kind"] == "amount_mismatch")
    assert (short["file"], short["line"], short["bank_amount"], short["expected_amount"]) == (
        "vcb-2026-12-01.xml",
        5,
        "25000",
        20_000,
    )
    unsettled = next(f for f in data["findings"] if f["kind"] == "unsettled_payment")
    assert unsettled["detail"].endswith("the payment platform says: paid")
    rolling = next(f for f in data["findings"] if f["kind"] == "statement_does_not_roll_forward")
    assert (
        "opening 1,000,000 + booked entries +5,000 = 1,005,000, but the closing balance is 1,009,000"
        in (rolling["detail"])
    )
    page = (findings_path.parent / "index.html").read_text()
    assert "Bank reconciliation" in page
    assert "Refund the second payment" in page
    assert (findings_path.parent / "findings.csv").exists()
    assert not list((tmp_path / "inbox").glob("*.xml"))  # moved once reconciled
    assert len(list((tmp_path / "inbox" / "done").glob("*/*.xml"))) == 2


def test_the_same_window_is_not_run_twice_and_a_forced_run_without_files_fails(
    tmp_path: Path, paygov: tuple[PayGovSandbox, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup(tmp_path, paygov[1])
    args = ["reconcile", str(config), "bank-reconcile", "--window", "2026-12-01T12:00"]
    assert main(args) == 0
    assert main(args) == 1
    assert "refused" in capsys.readouterr().err
    forced = [*args, "--force", "--by", "an operator", "--reason", "the bank resent its file"]
    assert main(forced) == 1  # the files were reconciled and moved: nothing to read
    assert "no bank statement files in" in capsys.readouterr().out


def test_a_broken_file_fails_the_run_names_it_and_moves_nothing(
    tmp_path: Path, paygov: tuple[PayGovSandbox, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup(tmp_path, paygov[1])
    broken = tmp_path / "inbox" / "vcb-broken.xml"
    broken.write_text(document("08", statement("08", entry("08", "12,5"))))
    assert main(["reconcile", str(config), "bank-reconcile", "--window", "2026-12-01T12:00"]) == 1
    out = capsys.readouterr().out
    assert "vcb-broken.xml" in out
    assert "Ntry/Amt" in out
    assert (
        len(list((tmp_path / "inbox").glob("*.xml"))) == 3
    )  # nothing moved: the next attempt reads them again


def test_the_applicant_key_is_a_digest_never_the_id_number() -> None:
    from lienthong.bank.job import applicant_key  # noqa: PLC0415

    dossier = orjson.dumps({"applicant": {"id_number": "046090000123", "full_name": "Nguyễn Văn A"}}).decode()
    key = applicant_key(dossier)
    assert len(key) == 32
    assert "046090000123" not in key
    assert key == applicant_key(orjson.dumps({"applicant": {"id_number": "046090000123"}}).decode())
    assert applicant_key("not json") == applicant_key("[]") == applicant_key('{"applicant": 3}') == ""
