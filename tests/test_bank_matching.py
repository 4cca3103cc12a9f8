"""Bank transactions against confirmed payments: each result category, and the traps of real files."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

from lienthong.bank.matching import Matcher, Payment, Report, normalised
from lienthong.bank.records import Transaction

DAY = date(2026, 12, 1)


def tx(
    amount: int | str,
    *refs: str,
    text: str = "",
    booked: date = DAY,
    status: str = "BOOK",
    reversal: bool = False,
    line: int = 10,
) -> Transaction:
    return Transaction(Decimal(amount), "VND", booked, booked, status, refs, text, "", "", reversal, 0, line)


def run(payments: list[Payment], *transactions: Transaction, days: int = 3, tolerance: int = 0) -> Report:
    matcher = Matcher(payments, date_tolerance_days=days, amount_tolerance=tolerance)
    for transaction in transactions:
        matcher.add(transaction)
    return matcher.finish()


def kinds(report: Report) -> list[tuple[str, str]]:
    return [(f.kind, f.reference) for f in report.findings]


PAID = [Payment("LT-0001", 150_000, DAY), Payment("LT-0002", 20_000, DAY)]


def test_a_transaction_naming_a_payment_with_its_amount_is_matched() -> None:
    report = run(PAID, tx(150_000, "LT-0001"), tx(20_000, "FT123", "LT-0002"))
    assert report.counts["matched"] == 2
    assert report.findings == []


def test_a_reference_in_the_payers_text_is_found_even_without_its_punctuation() -> None:
    report = run(PAID, tx(150_000, text="TT lt0001 nop phi"), tx(20_000, text="LT.0002"))
    assert report.counts["matched"] == 2


def test_short_words_of_the_payers_text_are_not_taken_for_references() -> None:
    paid = [Payment("AB-1", 10_000, DAY)]
    report = run(paid, tx(10_000, text="ab1 chuyen tien", booked=date(2026, 12, 20)))
    assert kinds(report) == [("unknown_in_bank", ""), ("missing_from_bank", "AB-1")]


def test_a_different_amount_is_a_mismatch_naming_both_amounts_and_the_line() -> None:
    report = run(PAID[:1], tx(140_000, "LT-0001", line=42))
    (finding,) = report.findings
    assert (finding.kind, finding.reference, finding.bank_amount, finding.expected_amount, finding.line) == (
        "amount_mismatch",
        "LT-0001",
        Decimal(140_000),
        150_000,
        42,
    )
    assert finding.detail == "the bank credited 140,000, the payment is 150,000"


def test_an_amount_within_the_tolerance_matches() -> None:
    assert run(PAID[:1], tx(149_000, "LT-0001"), tolerance=1_000).counts["matched"] == 1


def test_a_payment_in_the_bank_twice_is_a_duplicate_payment() -> None:
    report = run(PAID[:1], tx(150_000, "LT-0001", line=1), tx(150_000, "LT-0001", line=2))
    assert report.counts["matched"] == 1
    assert [(f.kind, f.reference, f.line) for f in report.findings] == [("duplicate_payment", "LT-0001", 2)]


def test_a_transaction_without_a_reference_matches_by_amount_and_the_closest_date() -> None:
    paid = [
        Payment("LT-A", 50_000, date(2026, 11, 28)),
        Payment("LT-B", 50_000, date(2026, 12, 2)),
        Payment("LT-C", 50_000, date(2026, 12, 9)),
    ]
    report = run(paid, tx(50_000, "FT999", booked=DAY), tx(50_000, booked=DAY))
    assert report.counts["matched_by_amount_and_date"] == 2
    # LT-B (1 day) then LT-A (3 days); LT-C is 8 days off, past the tolerance, so it stays missing.
    assert kinds(report) == [("missing_from_bank", "LT-C")]


def test_a_credit_nobody_asked_for_is_unknown_in_the_bank() -> None:
    report = run(PAID, tx(150_000, "LT-0001"), tx(20_000, "LT-0002"), tx(7_777, "SOMEONE-ELSE", line=9))
    assert [(f.kind, f.bank_amount, f.line) for f in report.findings] == [
        ("unknown_in_bank", Decimal(7_777), 9)
    ]


def test_a_confirmed_payment_the_bank_never_credited_is_missing() -> None:
    report = run(PAID, tx(150_000, "LT-0001"))
    assert kinds(report) == [("missing_from_bank", "LT-0002")]
    assert report.findings[0].expected_amount == 20_000


def test_debits_pending_entries_and_reversals_are_left_out_and_counted() -> None:
    report = run(
        PAID,
        tx(-150_000, "LT-0001"),
        tx(150_000, "LT-0001", status="PDNG"),
        tx(150_000, "LT-0001", reversal=True),
        tx(20_000, "LT-0002"),
    )
    assert report.counts["ignored"] == 3
    assert kinds(report) == [("missing_from_bank", "LT-0001")]


def test_references_compare_without_case_and_punctuation() -> None:
    assert normalised("lt-0001.x/y") == "LT0001XY"
    assert run(PAID[:1], tx(150_000, "lt 0001")).counts["matched"] == 1


def test_the_report_is_written_as_json_and_csv(tmp_path: Path) -> None:
    report = run(PAID, tx(140_000, "LT-0001"))
    as_json, as_csv = report.write(tmp_path / "out")
    data = json.loads(as_json.read_text())
    assert data["counts"] == {"amount_mismatch": 1, "missing_from_bank": 1}
    assert data["findings"][0]["bank_amount"] == "140000"
    lines = as_csv.read_text().splitlines()
    assert lines[0].startswith("kind,reference,bank_amount,expected_amount,booked")
    assert lines[1].startswith("amount_mismatch,LT-0001,140000,150000,2026-12-01")


def test_findings_past_the_cap_are_counted_not_kept() -> None:
    matcher = Matcher([], date_tolerance_days=0, amount_tolerance=0, max_findings=3)
    for n in range(10):
        matcher.add(tx(1_000 + n, f"STRANGER-{n}"))
    report = matcher.finish()
    assert len(report.findings) == 3
    assert (report.counts["unknown_in_bank"], report.counts["findings_not_listed"]) == (10, 7)


def payer_tx(amount: int, reference: str, account: str) -> Transaction:
    return Transaction(Decimal(amount), "VND", DAY, DAY, "BOOK", (reference,), "", "", account, False, 0, 1)


def test_one_account_paying_for_many_applicants_dossiers_is_a_finding() -> None:
    paid = [
        Payment(f"LT-{n}", 10_000, DAY, dossier_code=f"HS-{n}", applicant=f"citizen-{n}") for n in range(6)
    ]
    own = [
        Payment(f"BIZ-{n}", 10_000, DAY, dossier_code=f"HB-{n}", applicant="one-business") for n in range(6)
    ]
    matcher = Matcher([*paid, *own], date_tolerance_days=0, amount_tolerance=0, payer_threshold=5)
    for payment in paid:
        matcher.add(payer_tx(10_000, payment.reference, "0011-OFFICIAL"))
    for payment in own:
        matcher.add(payer_tx(10_000, payment.reference, "0099-BUSINESS"))  # a business paying its own
    matcher.add(payer_tx(10_000, "nothing", "0011-OFFICIAL"))  # matched by amount and date: counts too
    report = matcher.finish()
    (finding,) = [f for f in report.findings if f.kind == "one_payer_many_dossiers"]
    assert finding.reference == "0011-OFFICIAL"
    assert finding.detail.startswith(
        "account 0011-OFFICIAL paid 6 payments for 6 applicants' dossiers: HS-0, HS-1"
    )


def test_the_payer_check_is_off_at_zero() -> None:
    paid = [Payment(f"LT-{n}", 10_000, DAY, dossier_code=f"HS-{n}", applicant=f"c-{n}") for n in range(6)]
    matcher = Matcher(paid, date_tolerance_days=0, amount_tolerance=0)
    for payment in paid:
        matcher.add(payer_tx(10_000, payment.reference, "0011"))
    assert "one_payer_many_dossiers" not in matcher.finish().counts
