"""Review probes: the matching (pass 2, reversals, duplicates across files)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from lienthong.bank.matching import Matcher, Payment, Report
from lienthong.bank.records import Transaction

DAY = date(2026, 12, 1)


def tx(
    amount: int | str, *refs: str, currency: str = "VND", reversal: bool = False, text: str = ""
) -> Transaction:
    return Transaction(Decimal(amount), currency, DAY, DAY, "BOOK", refs, text, "", "", reversal, 0, 10)


def match(payments: list[Payment], *items: tuple[Transaction, str]) -> Report:
    matcher = Matcher(payments, date_tolerance_days=1, amount_tolerance=0)
    for transaction, source in items:
        matcher.add(transaction, source)
    return matcher.finish()


def kinds(report: Report) -> set[tuple[str, str]]:
    return {(f.kind, f.reference) for f in report.findings}


def test_a_credit_in_another_currency_without_a_reference_is_not_matched_by_amount_and_date() -> None:
    # Given a 150,000 VND fee and a credit of 150,000 USD that names no payment
    report = match([Payment("LT-1", 150_000, DAY)], (tx(150_000, "FT-9", currency="USD"), "s.xml"))
    # Then it is not taken as the fee's payment (by reference it would be an amount mismatch)
    assert report.counts["matched_by_amount_and_date"] == 0, report.counts
    assert ("missing_from_bank", "LT-1") in kinds(report) or ("amount_mismatch", "LT-1") in kinds(report)


def test_the_same_credit_without_a_payment_reference_in_two_files_pays_one_payment_not_two() -> None:
    # Given two citizens who each owe the common 50,000 fee the same day, and only one credit of 50,000
    # naming no payment (bank reference FT-77 only), reported by the intraday camt.054 and again by the
    # day's camt.053
    payments = [Payment("LT-1", 50_000, DAY), Payment("LT-2", 50_000, DAY)]
    credit = tx(50_000, "FT-77", text="nop phi")
    report = match(payments, (credit, "n.xml"), (credit, "s.xml"))
    # Then one payment is paid and the other is missing from the bank: the second copy is the same credit
    assert report.counts["matched_by_amount_and_date"] == 1, report.counts
    assert report.counts["missing_from_bank"] == 1, report.counts


def test_the_bank_reversing_a_duplicate_payment_leaves_the_first_credit_paying_it() -> None:
    # Given a citizen who paid LT-1 twice (a duplicate), and the bank returning the second credit
    report = match(
        [Payment("LT-1", 150_000, DAY)],
        (tx(150_000, "LT-1", "FT-1"), "s.xml"),
        (tx(150_000, "LT-1", "FT-2"), "s.xml"),
        (tx(-150_000, "LT-1", "FT-2", reversal=True), "s.xml"),
    )
    # Then the first credit still pays the payment: it is not missing from the bank
    assert ("missing_from_bank", "LT-1") not in kinds(report), report.findings


def test_a_reversal_listed_before_the_credit_it_reverses_still_unpays_the_payment() -> None:
    # Given the credit for LT-1 and its reversal, the reversal read first (another file sorting earlier,
    # or a statement ordered by entry reference)
    report = match(
        [Payment("LT-1", 150_000, DAY)],
        (tx(-150_000, "LT-1", reversal=True), "a.xml"),
        (tx(150_000, "LT-1"), "b.xml"),
    )
    # Then the order does not matter: the money is gone, LT-1 is a finding
    assert any(f.reference == "LT-1" for f in report.findings), report.counts


def test_two_credits_naming_one_payment_on_different_days_in_two_files_are_a_duplicate_payment() -> None:
    # Given a bank that passes on only the payer's end-to-end id (its own AcctSvcrRef is optional), and a
    # citizen who paid LT-1 on 1 December (morning notification) and again on 2 December (next file)
    first = tx(150_000, "LT-1")
    again = Transaction(
        Decimal(150_000),
        "VND",
        date(2026, 12, 2),
        date(2026, 12, 2),
        "BOOK",
        ("LT-1",),
        "",
        "",
        "",
        False,
        0,
        7,
    )
    report = match([Payment("LT-1", 150_000, DAY)], (first, "n-1.xml"), (again, "n-2.xml"))
    # Then the second payment is a duplicate to refund, not "the same credit reported twice"
    assert report.counts["duplicate_payment"] == 1, report.counts
