"""What a bank statement file says, as lienthong reads it: transactions, and one summary per statement.

A file is read as a stream (``statements.read_statements``): each transaction as it comes, then its
statement's ``StatementSummary`` once the statement ends, so that a file of a million entries never sits in
memory.
Amounts are ``Decimal`` and signed: a credit to the account is positive, a debit negative.

A file that cannot be read fails with ``StatementError``, naming the file, the line and the element; a
statement that reads but does not add up (opening balance + entries != closing balance) is no error:
its summary says ``rolls_forward=False`` and the reconciliation reports it as a finding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

from lienthong.errors import LienthongError

_AMOUNT = re.compile(r"[+-]?[0-9]{1,18}(?:\.[0-9]{1,5})?\Z")  # ASCII digits: \d takes any script's

Kind = Literal["camt.053", "camt.054", "csv"]

DEFAULT_MAX_BYTES = 2 * 1024 * 1024 * 1024
"""The largest statement file read by default (2 GiB): a million camt.054 entries take about 900 MB."""

OPENING_CODES = ("OPBD", "PRCD")
"""Balance codes that open a statement, in order of preference: opening booked, else the previous
statement's closing booked."""
CLOSING_CODE = "CLBD"


def plain_amount(text: str, *, signed: bool = False) -> Decimal | None:
    """``text`` as an amount of ISO 20022's shape (ActiveOrHistoricCurrencyAndAmount: at most 18 digits,
    5 of them after the point, no exponent, no sign unless ``signed``), or None. Checked before ``Decimal``,
    which takes ``1e999999999`` and overflows later."""
    if _AMOUNT.match(text) is None or (not signed and text[0] in "+-"):
        return None
    digits = len(text) - ("." in text) - (text[0] in "+-")
    return Decimal(text) if digits <= 18 else None


class StatementError(LienthongError):
    """A statement file that cannot be read: ``file``, ``line`` (0 when unknown) and ``element`` say where."""

    def __init__(self, file: str, problem: str, *, line: int = 0, element: str = "") -> None:
        where = f"{file}:{line}" if line else file
        what = f" <{element}>" if element else ""
        super().__init__(f"{where}:{what} {problem}")
        self.file = file
        self.line = line
        self.element = element
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Transaction:
    """One movement on the account as the bank reported it: an entry, or one transaction of an entry
    that carries several with their own amounts.

    ``references`` are the identifiers the bank passed on, most specific first (end-to-end id,
    transaction id, the bank's own references, the entry's reference), without ``NOTPROVIDED``;
    ``remittance`` is the free text (the payer's "nội dung"), where a payment reference often travels.
    """

    amount: Decimal
    currency: str
    booked: date | None
    value_date: date | None
    status: str
    references: tuple[str, ...]
    remittance: str
    debtor: str
    debtor_account: str
    reversal: bool
    statement: int
    line: int

    @property
    def is_booked(self) -> bool:
        return self.status == "BOOK"


@dataclass(frozen=True)
class StatementSummary:
    """One statement (or notification) of a file, once read whole.

    ``balances`` are signed amounts by balance code (the last of a code wins); ``entries`` counts every
    entry and ``entries_sum`` is their signed sum; ``booked_sum`` is that of the booked ones only.
    ``rolls_forward`` is whether opening + booked entries == closing, None when the statement has no
    opening or no closing balance (a notification, a CSV export).
    """

    file: str
    index: int
    kind: Kind
    version: str
    id: str
    account: str
    currency: str
    line: int
    balances: dict[str, Decimal] = field(default_factory=dict)
    entries: int = 0
    entries_sum: Decimal = Decimal(0)
    booked_sum: Decimal = Decimal(0)
    pending: int = 0

    @property
    def opening(self) -> Decimal | None:
        for code in OPENING_CODES:
            if code in self.balances:
                return self.balances[code]
        return None

    @property
    def closing(self) -> Decimal | None:
        return self.balances.get(CLOSING_CODE)

    @property
    def rolls_forward(self) -> bool | None:
        opening, closing = self.opening, self.closing
        if opening is None or closing is None:
            return None
        return opening + self.booked_sum == closing

    def as_json(self) -> dict[str, object]:
        """The summary as ``lienthong statement show --json`` prints it; amounts as decimal strings."""
        return {
            "file": self.file,
            "statement": self.index,
            "kind": self.kind,
            "version": self.version,
            "id": self.id,
            "account": self.account,
            "currency": self.currency,
            "balances": {code: str(amount) for code, amount in self.balances.items()},
            "entries": self.entries,
            "entries_sum": str(self.entries_sum),
            "booked_sum": str(self.booked_sum),
            "pending": self.pending,
            "rolls_forward": self.rolls_forward,
        }


Item = Transaction | StatementSummary
