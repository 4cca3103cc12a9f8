"""A bank's CSV export, read through a column layout from config.

Vietnamese banks export statements as CSV (or spreadsheets saved as CSV) with their own headers, date
formats and number formats ("1.000.000" or "1,000,000"); none of that is standard, so all of it is the
layout's (``CsvLayout``), one per bank in config. Amounts come either as one column, signed or with a
column telling credit from debit, or as two columns, credit and debit. A CSV export carries no balances
lienthong reads: its summary's ``rolls_forward`` is None.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lienthong.bank.records import Item, StatementError, StatementSummary, Transaction, plain_amount


class CsvColumns(BaseModel):
    """Which header names the file's columns carry; only ``booked`` and an amount are required."""

    model_config = ConfigDict(extra="forbid")

    booked: str = Field(description="The booking date's column.")
    amount: str | None = Field(
        default=None, description="One amount column: signed, or unsigned with `direction`."
    )
    direction: str | None = Field(
        default=None,
        description="The column that tells a credit from a debit (values in `credit_values`/`debit_values`).",
    )
    credit: str | None = Field(default=None, description="The credit amount's column (with `debit`).")
    debit: str | None = Field(default=None, description="The debit amount's column (with `credit`).")
    reference: str | None = Field(default=None, description="The bank's transaction reference column.")
    remittance: str | None = Field(
        default=None, description="The transfer's description (nội dung), where references travel."
    )
    debtor: str | None = Field(default=None, description="The payer's name column.")
    debtor_account: str | None = Field(default=None, description="The payer's account column.")
    value_date: str | None = Field(default=None, description="The value date's column.")
    currency: str | None = Field(default=None, description="A currency column (else `currency`).")

    @model_validator(mode="after")
    def _one_way_to_amounts(self) -> Self:
        if (self.amount is None) == (self.credit is None and self.debit is None):
            raise ValueError("give either `amount` (with `direction` if unsigned) or `credit` and `debit`")
        if (self.credit is None) != (self.debit is None):
            raise ValueError("`credit` and `debit` go together")
        return self


class CsvLayout(BaseModel):
    """How one bank writes its CSV statements."""

    model_config = ConfigDict(extra="forbid")

    columns: CsvColumns = Field(description="Which header names the file's columns carry.")
    files: str = Field(
        default="*.csv",
        description="Which files of the inbox this layout reads (a glob on the file name, e.g. `vtb-*.csv`);"
        " the first layout whose pattern matches is used.",
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="The field separator.")
    encoding: str = Field(default="utf-8-sig", description="The file's text encoding.")
    skip_rows: int = Field(default=0, ge=0, le=1000, description="Lines before the header row.")
    date_format: str = Field(default="%d/%m/%Y", description="strptime format of the date columns.")
    decimal: str = Field(default=".", min_length=1, max_length=1, description="The decimal separator.")
    thousands: str = Field(default=",", max_length=1, description="The thousands separator (empty: none).")
    credit_values: list[str] = Field(
        default=["C", "CR", "CRDT", "+", "Có"],
        description="Values of the `direction` column that mean a credit (case-insensitive).",
    )
    debit_values: list[str] = Field(
        default=["D", "DR", "DBIT", "-", "Nợ"],
        description="Values of the `direction` column that mean a debit (case-insensitive).",
    )
    currency: str = Field(default="VND", description="The currency when no column gives it.")
    account: str = Field(default="", description="The account the file is a statement of.")

    @model_validator(mode="after")
    def _separators(self) -> Self:
        if self.decimal == self.thousands:
            raise ValueError("`decimal` and `thousands` must differ")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {self.encoding!r}") from None
        return self


def read(path: Path, layout: CsvLayout, *, name: str) -> Iterator[Item]:
    """Every row of the CSV file at ``path`` as a transaction, then the file's one summary."""
    reader = _Rows(path, layout, name)
    yield from reader.transactions()
    yield reader.summary()


class _Rows:
    def __init__(self, path: Path, layout: CsvLayout, name: str) -> None:
        self.path, self.layout, self.name = path, layout, name
        self.entries = 0
        self.total = Decimal(0)
        self.currency = layout.currency
        thousands, decimal = re.escape(layout.thousands), re.escape(layout.decimal)
        groups = f"[0-9]{{1,3}}(?:{thousands}[0-9]{{3}})+|" if layout.thousands else ""
        self._grouped = re.compile(f"[+-]?(?:{groups}[0-9]+)(?:{decimal}[0-9]+)?\\Z")
        self._credit = {v.casefold() for v in layout.credit_values}
        self._debit = {v.casefold() for v in layout.debit_values}

    def transactions(self) -> Iterator[Transaction]:
        layout, line = self.layout, 0
        try:
            with self.path.open(encoding=layout.encoding, newline="") as handle:
                for _ in range(layout.skip_rows):
                    handle.readline()
                # Strict: a quote opened and never closed is an error, not a text cell running on to the
                # end of the file with every later credit inside it.
                rows = csv.reader(handle, delimiter=layout.delimiter, strict=True)
                header = next(rows, None)
                if header is None:
                    raise StatementError(self.name, "has no header row", line=layout.skip_rows + 1)
                index = self._columns(header)
                for row in rows:
                    line = layout.skip_rows + rows.line_num
                    if not any(cell.strip() for cell in row):
                        continue
                    yield self._transaction(row, index, line)
        except UnicodeDecodeError as exc:
            problem = f"is not {layout.encoding} text: {exc.reason} at byte {exc.start}"
            raise StatementError(self.name, problem, line=line + 1) from exc
        except csv.Error as exc:
            raise StatementError(self.name, f"is not readable CSV: {exc}", line=line + 1) from exc
        except OSError as exc:
            raise StatementError(self.name, f"cannot be read: {exc.strerror or exc}") from exc

    def summary(self) -> StatementSummary:
        return StatementSummary(
            file=self.name,
            index=0,
            kind="csv",
            version="",
            id="",
            account=self.layout.account,
            currency=self.currency,
            line=self.layout.skip_rows + 1,
            entries=self.entries,
            entries_sum=self.total,
            booked_sum=self.total,
        )

    def _columns(self, header: list[str]) -> dict[str, int]:
        names = {cell.strip(): i for i, cell in enumerate(header)}
        named = Counter(cell.strip() for cell in header)
        index: dict[str, int] = {}
        for key, column in self.layout.columns.model_dump().items():
            if column is None:
                continue
            if column not in names:
                # The header's cells are not quoted back: when the header row is missing (or skip_rows is
                # wrong) they are a payment's, with a citizen's name and ID number in them.
                raise StatementError(
                    self.name,
                    f"has no column {column!r} (columns.{key}) in its header row of {len(names)} columns;"
                    " check the layout's columns and skip_rows",
                    line=self.layout.skip_rows + 1,
                )
            if named[column] > 1:
                raise StatementError(
                    self.name,
                    f"names column {column!r} (columns.{key}) more than once in its header row: which one"
                    " holds it cannot be told",
                    line=self.layout.skip_rows + 1,
                )
            index[key] = names[column]
        return index

    def _transaction(self, row: list[str], index: dict[str, int], line: int) -> Transaction:
        def cell(key: str) -> str:
            i = index.get(key)
            if i is None:
                return ""
            if i >= len(row):
                raise StatementError(self.name, f"has no {key} cell in this row", line=line, element=key)
            return row[i].strip()

        if "amount" in index:
            amount = self._number(cell("amount"), line, "amount")
            if "direction" in index:
                amount = abs(amount) * self._direction(cell("direction"), line)
        else:
            credit, debit = cell("credit"), cell("debit")
            amount = (self._number(credit, line, "credit") if credit else Decimal(0)) - (
                abs(self._number(debit, line, "debit")) if debit else Decimal(0)
            )
        booked = self._date(cell("booked"), line, "booked")
        value = cell("value_date")
        currency = cell("currency") or self.layout.currency
        self.entries += 1
        self.total += amount
        reference = cell("reference")
        return Transaction(
            amount, currency, booked, self._date(value, line, "value_date") if value else None, "BOOK",
            (reference,) if reference else (), cell("remittance"), cell("debtor"),
            cell("debtor_account"), False, 0, line,
        )  # fmt: skip

    def _number(self, text: str, line: int, column: str) -> Decimal:
        cleaned = text.strip().replace("\u00a0", " ")
        # Thousands separators only between groups of three digits: "500,00" under a "," separator is
        # refused, never read as 50,000.
        if self._grouped.match(cleaned) is None:
            amount = None
        else:
            if self.layout.thousands:
                cleaned = cleaned.replace(self.layout.thousands, "")
            amount = plain_amount(cleaned.replace(self.layout.decimal, "."), signed=True)
        if amount is None:
            raise StatementError(
                self.name,
                f"amount {text[:40]!r} is not a number (at most 18 digits, 5 after the point)",
                line=line,
                element=column,
            )
        return amount

    def _direction(self, text: str, line: int) -> int:
        value = text.casefold()
        if value in self._credit:
            return 1
        if value in self._debit:
            return -1
        raise StatementError(
            self.name,
            f"direction {text[:20]!r} is neither a credit nor a debit value",
            line=line,
            element="direction",
        )

    def _date(self, text: str, line: int, column: str) -> date:
        try:
            return datetime.strptime(text, self.layout.date_format).date()
        except ValueError:
            raise StatementError(
                self.name,
                f"date {text[:40]!r} does not match {self.layout.date_format!r}",
                line=line,
                element=column,
            ) from None
