"""The matcher's fast paths agree with its plain ones: ``add_all`` with ``add``, the day-by-day search
of pass 2 with a scan of every candidate, the bulk normalisation with the one-by-one, the look-ups that
skip what is too short to be a key with looking up everything."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.bank.matching import (
    MIN_WORD,
    Finding,
    Matcher,
    Payment,
    Report,
    _all_normalised,
    normalised,
)
from lienthong.bank.records import Transaction

DAY = date(2026, 12, 1)
REFERENCES = ["LT-0001", "lt0001", "LT-0002", "AB.12345", "AB12345", "H56-2612-0001", "H56-26120-001"]
"""Payment references chosen to collide once case and punctuation are dropped."""

words = st.sampled_from([*REFERENCES, "LT0002", "ab-12345", "FT0099", "N1", "nop", "le phi", "chuyen"])
payments = st.lists(
    st.builds(
        Payment,
        reference=st.just(""),
        amount=st.sampled_from([10_000, 20_000, 150_000]),
        paid_on=st.integers(0, 6).map(lambda d: DAY + timedelta(days=d)),
        dossier_code=st.sampled_from(["", "H1", "H2"]),
        applicant=st.sampled_from(["", "a", "b"]),
        due=st.booleans(),
    ),
    max_size=len(REFERENCES),
).map(lambda ps: [Payment(REFERENCES[i], *_rest(p)) for i, p in enumerate(ps)])


def _rest(p: Payment) -> tuple[int, date, str, str, str, bool]:
    return p.amount, p.paid_on, p.transaction_id, p.dossier_code, p.applicant, p.due


transactions = st.builds(
    Transaction,
    amount=st.sampled_from(["10000", "20000", "150000", "-10000", "0", "10000.50", "15000"]).map(Decimal),
    currency=st.sampled_from(["VND", "", "USD"]),
    booked=st.one_of(st.none(), st.integers(-4, 10).map(lambda d: DAY + timedelta(days=d))),
    value_date=st.none(),
    status=st.sampled_from(["BOOK", "BOOK", "BOOK", "PDNG"]),
    references=st.lists(words, max_size=3).map(tuple),
    remittance=st.lists(words, max_size=3).map(" ".join),
    debtor=st.just(""),
    debtor_account=st.sampled_from(["", "0011", "0022"]),
    reversal=st.sampled_from([False, False, False, True]),
    statement=st.just(0),
    line=st.integers(1, 99),
)
batches = st.lists(
    st.tuples(st.sampled_from(["a.xml", "b.xml"]), st.lists(transactions, max_size=6)), max_size=4
)


def _report(report: Report) -> tuple[dict[str, int], list[Finding]]:
    return dict(report.counts), report.findings


@settings(max_examples=300, deadline=None)
@given(payments, batches, st.integers(0, 3), st.sampled_from([0, 1, 2]))
def test_add_all_finds_what_add_finds_one_by_one(
    paid: list[Payment], files: list[tuple[str, list[Transaction]]], days: int, threshold: int
) -> None:
    one_by_one = Matcher(paid, date_tolerance_days=days, amount_tolerance=0, payer_threshold=threshold)
    at_once = Matcher(paid, date_tolerance_days=days, amount_tolerance=0, payer_threshold=threshold)
    # The day's camt.054 read again in its camt.053: the same bookings in another file.
    files = [*files, ("c.xml", [t for _, batch in files[:1] for t in batch])]
    for n, (source, batch) in enumerate(files, 1):
        for transaction in batch:
            one_by_one.add(transaction, source)
        # The last file's bookings are not kept to be recognised in a later one: none follows.
        at_once.add_all(iter(batch), source, last=n == len(files))
    assert _report(at_once.finish()) == _report(one_by_one.finish())


def test_nothing_is_taken_after_the_file_said_to_be_the_last() -> None:
    """After the last file, a repeat of its bookings could no longer be recognised: refused, not
    miscounted as a duplicate payment."""
    credit = Transaction(Decimal(10_000), "VND", DAY, None, "BOOK", ("LT-0001",), "", "", "", False, 0, 1)
    matcher = Matcher([Payment("LT-0001", 10_000, DAY)], date_tolerance_days=0, amount_tolerance=0)
    matcher.add_all([credit], "camt053.xml", last=True)
    with pytest.raises(ValueError, match=r"camt053\.xml was added as the last file"):
        matcher.add_all([credit], "camt054.xml")
    with pytest.raises(ValueError, match="last file"):
        matcher.add(credit, "camt054.xml")
    assert matcher.finish().counts["matched"] == 1


def _closest(paid: list[Payment], credits: list[Transaction], days: int) -> list[int | None]:
    """Pass 2 as first written: every candidate scanned, the first of the smallest gap kept."""
    taken: set[int] = set()
    chosen: list[int | None] = []
    for credit in credits:
        assert credit.booked is not None
        best, best_gap = None, days + 1
        for i, payment in enumerate(paid):
            gap = abs((payment.paid_on - credit.booked).days)
            if i not in taken and payment.amount == credit.amount and gap < best_gap:
                best, best_gap = i, gap
        if best is not None:
            taken.add(best)
        chosen.append(best)
    return chosen


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([10_000, 20_000]), st.integers(0, 8)), max_size=12),
    st.lists(st.tuples(st.sampled_from([10_000, 20_000]), st.integers(-3, 11)), max_size=12),
    st.integers(0, 4),
)
def test_pass_two_takes_the_closest_unpaid_payment_of_the_amount_as_a_full_scan_does(
    amounts_days: list[tuple[int, int]], credits_days: list[tuple[int, int]], days: int
) -> None:
    paid = [Payment(f"LT-{i:04d}", a, DAY + timedelta(days=d)) for i, (a, d) in enumerate(amounts_days)]
    credits = [
        Transaction(Decimal(a), "VND", DAY + timedelta(days=d), None, "BOOK", (), "", "", "", False, 0, n)
        for n, (a, d) in enumerate(credits_days)
    ]
    matcher = Matcher(paid, date_tolerance_days=days, amount_tolerance=0)
    matcher.add_all(credits)
    report = matcher.finish()
    expected = _closest(paid, credits, days)
    assert report.counts["matched_by_amount_and_date"] == sum(1 for i in expected if i is not None)
    unknown = [f.line for f in report.findings if f.kind == "unknown_in_bank"]
    assert unknown == [n for n, i in enumerate(expected) if i is None]
    missing = {f.reference for f in report.findings if f.kind == "missing_from_bank"}
    assert missing == {p.reference for i, p in enumerate(paid) if i not in expected}


def test_references_are_normalised_to_ascii_letters_and_digits() -> None:
    assert normalised("lt-0001.x/y") == "LT0001XY"
    assert normalised("Lệ phí 12") == "LPH12"  # letters outside ASCII are dropped, as banks drop marks
    assert normalised("\udcff-7") == "7"  # a lone surrogate (from a badly decoded file) is dropped too


@given(st.lists(st.text(max_size=12), max_size=20))
def test_normalising_all_references_at_once_is_normalising_each(references: list[str]) -> None:
    assert _all_normalised(references) == [normalised(reference) for reference in references]


_WORD = re.compile(r"[^\s,;:/|()\[\]{}\"'+]+")


def _named_as_first_written(paid: list[Payment], transaction: Transaction) -> int | None:
    """The payment a transaction names, as first written: every reference as written, then normalised
    (keys that collide once normalised name none), then every word of the payer's text the same way,
    a normalised word counting from ``MIN_WORD`` letters and digits; no length taken as a shortcut."""
    index = {p.reference: i for i, p in enumerate(paid)}
    keys = [normalised(p.reference) for p in paid]
    loose = {key: i for i, key in enumerate(keys) if keys.count(key) == 1}
    for reference in transaction.references:
        if reference in index:
            return index[reference]
        if normalised(reference) in loose:
            return loose[normalised(reference)]
    for word in _WORD.findall(transaction.remittance):
        if word in index:
            return index[word]
        key = normalised(word)
        if len(key) >= MIN_WORD and key in loose:
            return loose[key]
    return None


pieces = st.text(alphabet="AbC12-. ", min_size=0, max_size=9)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(pieces.filter(bool), max_size=6, unique=True),
    st.lists(st.lists(pieces, max_size=3), min_size=1, max_size=4),
    st.lists(st.lists(pieces, max_size=4), min_size=1, max_size=4),
)
def test_the_length_shortcuts_of_the_look_ups_find_what_looking_everywhere_finds(
    references: list[str], said: list[list[str]], texts: list[list[str]]
) -> None:
    paid = [Payment(reference, 10_000, DAY) for reference in references]
    matcher = Matcher(paid, date_tolerance_days=0, amount_tolerance=0)
    for refs in said:
        for words in texts:
            credit = Transaction(
                Decimal(10_000), "VND", DAY, None, "BOOK", tuple(refs), "/".join(words), "", "", False, 0, 1
            )
            assert matcher._find(credit) == _named_as_first_written(paid, credit), credit
