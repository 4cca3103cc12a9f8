"""Bank transactions against the payments lienthong confirmed, each result classified.

Two passes, as a person would do it:

1. **By reference.** A booked credit whose references (end-to-end id, transaction id, the bank's
   references) or whose payer's text names a confirmed payment's reference is that payment's: *matched*
   when the amounts agree (within ``amount_tolerance``), an *amount mismatch* when they do not, a
   *duplicate payment* when the payment was already matched by another transaction. References are
   compared as written, then with case and punctuation dropped (banks strip ``-`` and ``.`` from
   transfer texts); a word of the payer's text counts from 6 letters or digits.
2. **By amount and date.** A credit that names no known reference matches the unmatched payment of the
   same amount paid closest to its booking date, within ``date_tolerance_days``; else it is *unknown in
   the bank's file*. Payments left unmatched are *missing from the bank*.

Debits, entries not booked and reversals are counted and left out. Pass 1 runs as transactions arrive
(``Matcher.add``), so a file is matched while it is read; only the credits left for pass 2 are kept.
Matched pairs are counted, not listed: a report lists what a person must look at.
"""

from __future__ import annotations

import json
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from itertools import compress
from operator import attrgetter
from pathlib import Path
from typing import Literal

from lienthong.bank.records import Transaction
from lienthong.reports import write_csv

FindingKind = Literal[
    "amount_mismatch",
    "missing_from_bank",
    "unknown_in_bank",
    "duplicate_payment",
    "statement_does_not_roll_forward",
    "unsettled_payment",
    "one_payer_many_dossiers",
    "reversed_by_bank",
]
ADVICE: dict[str, str] = {
    "amount_mismatch": "Compare the bank's credit with the fee the dossier owed; collect or refund the"
    " difference, then correct the payment.",
    "missing_from_bank": "Ask the payment platform and the bank whether the money arrived; the receipt"
    " stands on a payment the bank's file does not show.",
    "unknown_in_bank": "Find whose payment it is from the payer's name and text; link it to its dossier or"
    " return it.",
    "duplicate_payment": "Refund the second payment: one dossier, one fee, one receipt.",
    "statement_does_not_roll_forward": "Ask the bank for a corrected statement; do not correct the figures"
    " by hand.",
    "unsettled_payment": "The payment platform was asked (QUERY); settle the payment as it answers, or"
    " follow up with the platform.",
    "reversed_by_bank": "The bank took the money back: ask the payer and the bank why before the receipt"
    " stands.",
    "one_payer_many_dossiers": "One account paid for many citizens' dossiers: check whether an official"
    " collected cash and paid on their behalf, which the directives forbid.",
}
"""Each kind of finding, in the report's order, with what a person should do about it."""
CURRENCY = "VND"
"""The currency of every payment lienthong confirms; a credit in another is an amount mismatch."""
MATCHED, FLAGGED = 1, 2
_PLAIN_CURRENCY = frozenset({"", CURRENCY})
MAX_FINDINGS = 100_000
"""Findings listed per run; past it they are only counted (``findings_not_listed``), so a file of a
million strangers' credits cannot hold a million findings in memory."""
MIN_WORD = 6
"""The fewest letters and digits a word of the payer's text must have to be taken for a reference."""

_WORD = r"[^\s,;:/|()\[\]{}\"'+]"
"""A character of a word of the payer's text (anything but spaces and punctuation between words)."""
_ZERO = re.compile(b"\\x00")
_KEEP = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DROP = bytes(c for c in range(256) if c not in _KEEP)
_DROP_KEEPING_LINES = _DROP.replace(b"\n", b"")
_REFERENCE, _AMOUNT = attrgetter("reference"), attrgetter("amount")


def normalised(reference: str) -> str:
    """A reference as banks may pass it on: ASCII letters, upper case, and digits; nothing else.

    Bytes, not ``str``: ``bytes.upper`` and ``bytes.translate`` are table look-ups, 2.7x faster than
    ``str.translate``; a letter outside ASCII is dropped (as banks' transfer texts drop diacritics)."""
    return reference.encode("utf-8", "ignore").upper().translate(None, _DROP).decode("ascii")


def _all_normalised(references: list[str]) -> list[str]:
    """``normalised`` of each reference, in one pass over them joined: 0.1 s for a million, against
    0.9 s one by one."""
    joined = "\n".join(references)
    if not references or joined.count("\n") != len(references) - 1:  # a reference holds a line break
        return [normalised(reference) for reference in references]
    keys = joined.encode("utf-8", "ignore").upper().translate(None, _DROP_KEEPING_LINES)
    return keys.decode("ascii").split("\n")


@dataclass(frozen=True, slots=True)
class Payment:
    """A confirmed payment, as the reconciliation sees it (amount in VND, the day it was paid)."""

    reference: str
    amount: int
    paid_on: date
    transaction_id: str = ""
    dossier_code: str = ""
    applicant: str = ""
    """Who the dossier is for, as a key (a digest of the applicant's ID number): dossiers of one applicant
    paid from one account are related, not the pattern the payer check looks for."""
    due: bool = True
    """Paid inside the run's window: reported missing if no transaction pays it. A payment of the
    margins (``date_tolerance_days`` around the window) may be matched, but belongs to another run."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One result a person must look at: its ``kind``, the payment's reference (none for an unknown
    transaction), both amounts, and where the transaction is in the file."""

    kind: FindingKind
    reference: str
    bank_amount: Decimal | None
    expected_amount: int | None
    booked: date | None
    statement: int
    line: int
    detail: str
    file: str = ""


@dataclass
class Report:
    """What one reconciliation found: counts by result, and the findings."""

    counts: Counter[str]
    findings: list[Finding]

    def write(self, directory: Path) -> list[Path]:
        """The findings as JSON (with the counts) and CSV in ``directory``; the paths written."""
        directory.mkdir(parents=True, exist_ok=True)
        as_json, as_csv = directory / "findings.json", directory / "findings.csv"
        rows = [_row(f) for f in self.findings]
        with as_json.open("w", encoding="utf-8") as out:
            json.dump({"counts": dict(self.counts), "findings": rows}, out, ensure_ascii=False)
        fields = list(Finding.__dataclass_fields__)
        write_csv(as_csv, fields, ([row[f] for f in fields] for row in rows))
        return [as_json, as_csv]


def _row(finding: Finding) -> dict[str, object]:
    row = asdict(finding)
    for key in ("bank_amount", "booked"):
        row[key] = "" if row[key] is None else str(row[key])
    if row["expected_amount"] is None:
        row["expected_amount"] = ""
    return row


def _booking(transaction: Transaction) -> int:
    """What identifies one booking of the bank's: its references, amount and day. The same from another
    file (the camt.054, then the camt.053) is the same credit; the references alone are not enough, as a
    bank may pass on only the payer's end-to-end id, the same in a second payment of another day."""
    return hash((transaction.references, transaction.amount, transaction.booked))


def _unmatched(matched: bytearray) -> Iterator[int]:
    """The indexes of the payments not matched, in order."""
    return (found.start() for found in _ZERO.finditer(matched))


class Matcher:
    """Matches transactions as they come (``add``, ``add_all``), then what is left (``finish``)."""

    def __init__(
        self,
        payments: list[Payment],
        *,
        date_tolerance_days: int,
        amount_tolerance: int,
        max_findings: int = MAX_FINDINGS,
        payer_threshold: int = 0,
    ) -> None:
        self._payments = payments
        self._payer_threshold = payer_threshold
        # The account each payment was paid from, by the payment's index ("" or None: none said); grouped
        # once at the end (a dict of accounts built as transactions came cost 1.7 s and 160 MB for a
        # million of them).
        self._payer_of: list[str | None] = [None] * len(payments) if payer_threshold else []
        self._days = date_tolerance_days
        self._tolerance = amount_tolerance
        self._max_findings = max_findings
        # By payment: 0 unmatched, MATCHED (counted in ``matched``), FLAGGED (matched with a finding).
        self._matched = bytearray(len(payments))
        # The transaction that matched each payment, as (its file, a hash of what it says): the same
        # transaction in a second file (the day's camt.054, then its camt.053) is not a second payment.
        self._first_hash = array("q", bytes(8 * len(payments)))
        self._first_source = array("i", bytes(4 * len(payments)))
        self._sources: dict[str, int] = {}
        self._last_source, self._last_source_id = "", self._sources.setdefault("", 0)
        # Two indexes, built by C loops (dict, zip, a bytes translation): a Python loop over a million
        # payments took half the match's time. References are unique in the store; keys that collide
        # once case and punctuation are dropped ("H56-2612-0001", "H56-26120-001") name no payment: a
        # payer's text meant for one must not pay the other. The second index is built when a key of
        # one of its keys' lengths is first looked for (``_loose_index``).
        references: list[str] = list(map(_REFERENCE, payments))
        self._index = dict(zip(references, range(len(payments)), strict=True))
        # A string of a length no key has cannot be one: a look-up in a dict of a million keys misses
        # the CPU's caches, and most words of a payer's text ("nop le phi") are short.
        self._lengths = frozenset(map(len, self._index))
        self._loose_keys: list[str] = []
        self._loose_lengths: frozenset[int] | None = None  # None: not yet normalised
        self._loose_shortest = 0
        self._loose: dict[str, int] | None = None
        self._words = re.compile(f"{_WORD}+")  # words too short to be a key left out once normalised
        # By payment, the amount a credit must carry to be matched in ``add_all``'s loop (a list: no
        # attribute of a ``Payment`` read per transaction); None for a payment of no amount.
        amounts: list[int] = list(map(_AMOUNT, payments))
        self._amounts: Sequence[int | None] = amounts
        if min(amounts, default=1) <= 0:
            self._amounts = [amount if amount > 0 else None for amount in amounts]
        self._left: list[tuple[Transaction, str]] = []
        self._last_file: str | None = None  # the source given as the last (``add_all(last=True)``)
        # Credits beyond the first, by payment (duplicate payments), and reversals read before any credit
        # of their payment: a reversal takes back a duplicate before the payment's first credit.
        self._paid_again: Counter[int] = Counter()
        self._early_reversals: list[tuple[Transaction, str, int]] = []
        self.counts: Counter[str] = Counter()
        self.matched = 0  # counted apart from ``counts``: it is the common case
        self.findings: list[Finding] = []

    def add_all(self, transactions: Iterable[Transaction], source: str = "", *, last: bool = False) -> None:
        """``add`` for each transaction of the file ``source``, as one loop: the common case (a booked
        credit in VND naming an unmatched payment of its amount, by its first reference as written, else
        by another or its payer's text) is matched here, with the matcher's state in locals; any other
        goes through ``add``. Twice as fast as calling ``add`` a million times
        (``benchmarks/bench_reconcile.py``).

        ``last``: no file follows this one. A booking's identity (``_booking``) is kept to recognise it
        in a later file; after the last, nothing can repeat it, so the loop does not compute it (a
        quarter of this loop's time). Adding anything after the last file is refused."""
        self._refuse_after_last()
        self._last_file = source if last else None
        remember = not last
        add, find, named = self._add, self._index.get, self._payment_named
        matched, amounts, payer_of = self._matched, self._amounts, self._payer_of
        first_hash, first_source = self._first_hash, self._first_source
        source_id = self._sources.setdefault(source, len(self._sources))
        count = 0
        for transaction in transactions:
            references = transaction.references
            found = find(references[0]) if references else None
            if found is None:  # by another reference, or the payer's text: the same, if it finds one
                found = named(transaction)
            if (
                found is None
                or matched[found]
                or transaction.amount != amounts[found]  # None for a payment of no amount
                or transaction.status != "BOOK"
                or transaction.reversal
                or transaction.currency not in _PLAIN_CURRENCY
            ):
                add(transaction, source, found)
                continue
            if remember:
                # ``_booking`` inline, with the payment's amount: equal to the credit's (so hashed alike,
                # as numbers are) and an int, faster to hash than a Decimal.
                first_hash[found] = hash((references, amounts[found], transaction.booked))
            first_source[found] = source_id
            if payer_of:
                payer_of[found] = transaction.debtor_account  # "" for none, as None
            matched[found] = MATCHED
            count += 1
        self.matched += count

    def add(self, transaction: Transaction, source: str = "") -> None:
        """Pass 1 for one transaction (from the file ``source``): by reference, or kept for pass 2."""
        self._refuse_after_last()
        self._add(transaction, source, self._payment_named(transaction))

    def _refuse_after_last(self) -> None:
        if self._last_file is not None:
            raise ValueError(
                f"{self._last_file or 'the file'} was added as the last file: a later one could repeat its"
                " bookings, which were not kept to be recognised"
            )

    def _payment_named(self, transaction: Transaction) -> int | None:
        """The payment ``add`` weighs the transaction against (named by its references or its payer's
        text), or None: none named, or a transaction ``add`` leaves out. From the indexes alone."""
        if transaction.status != "BOOK":
            return None
        if transaction.reversal:
            return self._find(transaction) if transaction.amount < 0 else None
        return self._find(transaction) if transaction.amount > 0 else None

    def _add(self, transaction: Transaction, source: str, found: int | None) -> None:
        """``add``, given the payment the transaction names (``_payment_named``)."""
        amount = transaction.amount
        if transaction.status != "BOOK":
            self.counts["ignored"] += 1
            return
        if transaction.reversal:
            if amount < 0:
                self._reversed(transaction, source, found)
            else:
                self.counts["ignored"] += 1  # a debit's reversal gives back what no payment asked for
            return
        if amount <= 0:
            self.counts["ignored"] += 1
            return
        if found is None:
            self._left.append((transaction, source))
            return
        payment = self._payments[found]
        said = _booking(transaction)
        if source != self._last_source:
            self._last_source, self._last_source_id = (
                source,
                self._sources.setdefault(source, len(self._sources)),
            )
        source_id = self._last_source_id
        if self._matched[found]:
            if self._first_hash[found] == said and self._first_source[found] != source_id:
                self.counts["seen_in_two_files"] += 1  # one credit, reported twice by the bank
                return
            self._paid_again[found] += 1  # a reversal of the payment takes this credit back first
            self._finding(
                "duplicate_payment",
                transaction,
                payment,
                "paid again: the payment was already matched",
                source,
            )
            return
        self._first_hash[found] = said
        self._first_source[found] = source_id
        if self._payer_of:
            self._payer_of[found] = transaction.debtor_account or None
        if transaction.currency and transaction.currency != CURRENCY:
            self._matched[found] = FLAGGED
            detail = (
                f"the bank credited {amount:,} {transaction.currency}, the payment is {payment.amount:,} VND"
            )
            self._finding("amount_mismatch", transaction, payment, detail, source)
            return
        if amount != payment.amount and abs(amount - payment.amount) > self._tolerance:
            self._matched[found] = FLAGGED
            self._finding(
                "amount_mismatch",
                transaction,
                payment,
                f"the bank credited {amount:,}, the payment is {payment.amount:,}",
                source,
            )
            return
        self._matched[found] = MATCHED
        self.matched += 1

    def _reversed(self, transaction: Transaction, source: str, found: int | None) -> None:
        """The bank took back a credit (a debit flagged as a reversal): the payment it matched is no
        longer paid by the bank's account of it."""
        self.counts["reversals"] += 1
        if found is None:
            return
        if not self._matched[found]:
            # Read before the credit it takes back (another file, or entries in another order): weighed
            # again once every credit is in (``finish``).
            self._early_reversals.append((transaction, source, found))
            return
        if self._paid_again[found]:
            self._paid_again[found] -= 1  # the bank took back a second payment: the first still pays it
            return
        if self._matched[found] == MATCHED:
            self.matched -= 1
        self._matched[found] = 0  # unmatched again: reported missing unless another credit pays it
        payment = self._payments[found]
        self._finding(
            "reversed_by_bank", transaction, payment, "the bank reversed the credit that paid it", source
        )

    def finish(self) -> Report:
        """Pass 2 (by amount and date), then the payments nobody paid; the report."""
        early, self._early_reversals = self._early_reversals, []
        for transaction, source, reversed_index in early:
            if self._matched[reversed_index]:  # its credit came after it
                self.counts["reversals"] -= 1  # counted once, when it was read
                self._reversed(transaction, source, reversed_index)
        # The payments still unpaid, by amount and day; each list lowest index last, popped first. The
        # zero bytes of ``_matched`` are found by a C scan: a Python loop over a million payments took
        # 0.2 s for the few thousand left.
        waiting: dict[tuple[int, int], list[int]] = {}
        payments = self._payments
        for i in _unmatched(self._matched):
            payment = payments[i]
            waiting.setdefault((payment.amount, payment.paid_on.toordinal()), []).append(i)
        for indices in waiting.values():
            indices.reverse()
        # The credits left, each booking once: the same one in a second file (the camt.054, then the
        # camt.053 of the day) is the same credit, as in pass 1.
        first_from: dict[int, str] = {}
        for transaction, source in self._left:
            if first_from.setdefault(_booking(transaction), source) != source:
                self.counts["seen_in_two_files"] += 1
                continue
            found = self._nearest(transaction, waiting)
            if found is None:
                self._finding(
                    "unknown_in_bank", transaction, None, "no confirmed payment names it or fits it", source
                )
                continue
            self._matched[found] = FLAGGED  # counted as matched_by_amount_and_date, not in ``matched``
            if self._payer_of:
                self._payer_of[found] = transaction.debtor_account or None
            self.counts["matched_by_amount_and_date"] += 1
        for i in _unmatched(self._matched):
            payment = payments[i]
            if payment.due:
                self.counts["missing_from_bank"] += 1
                if len(self.findings) >= self._max_findings:
                    self.counts["findings_not_listed"] += 1
                    continue
                self.findings.append(
                    Finding(
                        "missing_from_bank", payment.reference, None, payment.amount, None, -1, 0,
                        f"confirmed as paid on {payment.paid_on}, not in the bank's file",
                    )
                )  # fmt: skip
        self._left = []
        self._many_dossiers_one_payer()
        if self.matched:
            self.counts["matched"] += self.matched
            self.matched = 0
        return Report(self.counts, self.findings)

    def _many_dossiers_one_payer(self) -> None:
        """One payer account paying for at least ``payer_threshold`` dossiers of as many applicants: the
        pattern of an official collecting cash and paying on citizens' behalf. Dossiers of one applicant
        (a business paying its own) do not count as unrelated."""
        counted = Counter(self._payer_of)  # a C loop over the accounts
        counted.pop(None, None)
        counted.pop("", None)
        # The accounts seen often enough, by C loops: a set comprehension over a million took 0.15 s;
        # none, the common case, is seen by one (``max``) in half the time of the two.
        if max(counted.values(), default=0) < self._payer_threshold:
            self._payer_of = []
            return
        busy = set(compress(counted.keys(), map(self._payer_threshold.__le__, counted.values())))
        if not busy:
            self._payer_of = []
            return
        paid: dict[str, list[Payment]] = {}
        for i, account in enumerate(self._payer_of):
            if account is not None and account in busy:
                paid.setdefault(account, []).append(self._payments[i])
        for account, payments in sorted(paid.items()):
            applicants = {p.applicant or p.dossier_code for p in payments}
            if len(applicants) < self._payer_threshold:
                continue
            codes = sorted({p.dossier_code or p.reference for p in payments})
            named = ", ".join(codes[:10]) + (f" and {len(codes) - 10} more" if len(codes) > 10 else "")
            self.counts["one_payer_many_dossiers"] += 1
            if len(self.findings) < self._max_findings:
                self.findings.append(
                    Finding(
                        "one_payer_many_dossiers", account, None, None, None, -1, 0,
                        f"account {account} paid {len(payments)} payments for {len(applicants)} applicants'"
                        f" dossiers: {named}",
                    )
                )  # fmt: skip
        self._payer_of = []

    def _normalise_references(self) -> None:
        """The payments' references normalised, and their lengths, for ``_find``; the index of them
        is built once a key of one of those lengths is looked for (``_loose_index``)."""
        self._loose_keys = _all_normalised(list(map(_REFERENCE, self._payments)))
        self._loose_lengths = frozenset(map(len, self._loose_keys))
        self._loose_shortest = min(self._loose_lengths, default=0)
        # Words too short for either index are not even listed: the pattern takes only words as long
        # as the shortest that could be a key (as written, or normalised and of ``MIN_WORD``).
        fewest = min(min(self._lengths, default=1), max(MIN_WORD, self._loose_shortest))
        self._words = re.compile(f"{_WORD}{{{max(fewest, 1)},}}")

    def _loose_index(self) -> dict[str, int]:
        if self._loose is not None:
            return self._loose
        keys, self._loose_keys = self._loose_keys, []
        loose = dict(zip(keys, range(len(keys)), strict=True))
        if len(loose) < len(keys):
            for key, times in Counter(keys).items():
                if times > 1:
                    del loose[key]
        self._loose = loose
        return loose

    def _find(self, transaction: Transaction) -> int | None:
        # A string of a length no key has cannot be one: most words of a payer's text are short.
        index, lengths = self._index, self._lengths
        if self._loose_lengths is None:
            self._normalise_references()
        loose_lengths, loose_shortest = self._loose_lengths or frozenset(), self._loose_shortest
        references = transaction.references
        # A reference shorter than every key normalised is no key as written either: the loop is for
        # references at least that long (a bank's own, "FT24...", often is not).
        if references and max(map(len, references)) >= loose_shortest:
            for reference in references:
                found = index.get(reference) if len(reference) in lengths else None
                if found is None and len(reference) >= loose_shortest:  # normalised is never longer
                    key = normalised(reference)
                    found = self._loose_index().get(key) if len(key) in loose_lengths else None
                if found is not None:
                    return found
        if transaction.remittance:
            fewest = max(MIN_WORD, loose_shortest)
            for word in self._words.findall(transaction.remittance):
                found = index.get(word) if len(word) in lengths else None
                if found is None and len(word) >= fewest:
                    key = normalised(word)
                    if len(key) >= fewest and len(key) in loose_lengths:
                        found = self._loose_index().get(key)
                if found is not None:
                    return found
        return None

    def _nearest(self, transaction: Transaction, waiting: dict[tuple[int, int], list[int]]) -> int | None:
        """The unpaid payment of the transaction's amount paid closest to its booking day (within
        ``date_tolerance_days``; on a tie, the first payment), looked up day by day outwards."""
        amount = transaction.amount
        if transaction.booked is None or amount != int(amount) or transaction.currency not in _PLAIN_CURRENCY:
            return None  # a credit in another currency pays no fee in VND by its amount
        amount_key, day, matched = int(amount), transaction.booked.toordinal(), self._matched
        for gap in range(self._days + 1):
            best = None
            for key in ((amount_key, day - gap), (amount_key, day + gap)) if gap else ((amount_key, day),):
                indices = waiting.get(key)
                while indices and matched[indices[-1]]:
                    indices.pop()  # paid since: by amount and date, or by a reference in another file
                if indices and (best is None or indices[-1] < best):
                    best = indices[-1]
            if best is not None:
                return best
        return None

    def _finding(
        self,
        kind: FindingKind,
        transaction: Transaction,
        payment: Payment | None,
        detail: str,
        source: str,
    ) -> None:
        self.counts[kind] += 1
        if len(self.findings) >= self._max_findings:
            self.counts["findings_not_listed"] += 1  # counted by kind above; memory stays bounded
            return
        self.findings.append(
            Finding(
                kind,
                payment.reference if payment is not None else "",
                transaction.amount,
                payment.amount if payment is not None else None,
                transaction.booked,
                transaction.statement,
                transaction.line,
                detail,
                source,
            )
        )
