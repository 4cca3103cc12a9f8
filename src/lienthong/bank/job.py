"""The ``bank-reconcile`` job: the bank's statement files against the payments lienthong confirmed.

One run covers one window of the schedule (``scheduler``). It reads every statement file waiting in
``bank_statements.inbox`` (camt.053, camt.054, or CSV through the first layout whose ``files`` pattern
names it), matches it against the payments paid in the window (and ``date_tolerance_days`` around it, so a
payment booked a day late still matches), and reports:

- the matching's findings (``bank.matching``): amount mismatches, payments missing from the bank,
  credits nobody asked for, payments made twice;
- every statement whose balances do not roll forward, named;
- payments still unsettled at the window's end, each asked of the payment platform (QUERY), with its
  answer: lienthong never settles a payment from this job, a person does (or its callback does).

The run writes ``findings.json``, ``findings.csv`` and ``index.html`` under ``reports_dir`` and answers
their paths; only then are the files it read moved to ``inbox/done/<run>/``. A file that cannot be read
fails the run, naming the file, the line and the element, and nothing is moved: the next attempt reads
the same files again.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import orjson

from lienthong.bank.csvfile import CsvLayout
from lienthong.bank.matching import ADVICE, Finding, Matcher, Payment, Report
from lienthong.bank.records import StatementSummary, Transaction
from lienthong.bank.statements import read_statements
from lienthong.errors import LienthongError
from lienthong.payments.records import PaymentRecord
from lienthong.reports import Discrepancy, RunPage
from lienthong.reports import write as write_page
from lienthong.scheduler.jobs import RunContext, RunResult
from lienthong.store import Store, units

log = logging.getLogger("lienthong.bank")
DONE = "done"
MAX_QUERIES = 1000
"""Unsettled payments asked of the payment platform per run, oldest first; the rest are counted."""


class NoStatements(LienthongError):
    """The inbox holds no statement file for the run: it fails, to be tried again when the bank's file
    has arrived (a missing file must not read as "nothing is missing")."""


class PlatformAnswer(Protocol):
    """What the payment platform says of one payment (``adapters.paygov.PayGovReply``)."""

    @property
    def TrangThaiGD(self) -> str: ...


Query = Callable[[str], Awaitable[PlatformAnswer | None]]
"""Ask the payment platform about one reference (``PayGovAdapter.query``)."""

_PLATFORM_STATES = {"1": "paid", "3": "pending", "4": "failed"}


@dataclass(frozen=True)
class BankJobSettings:
    """Where the job reads and writes, and how it matches (from ``bank_statements``)."""

    inbox: Path
    reports_dir: Path
    layouts: dict[str, CsvLayout]
    max_file_bytes: int
    date_tolerance_days: int
    amount_tolerance: int
    zone: ZoneInfo
    payer_threshold: int = 0


class BankReconciliation:
    """The job: ``await job(context)`` reconciles the files in the inbox for ``context.window``."""

    name = "bank-reconcile"

    def __init__(self, store: Store, settings: BankJobSettings, *, query: Query | None = None) -> None:
        self._store = store
        self._settings = settings
        self._query = query

    async def __call__(self, context: RunContext) -> RunResult:
        settings = self._settings
        files = statement_files(settings.inbox)
        if not files:
            raise NoStatements(f"no bank statement files in {settings.inbox} for {context.run_id}")
        margin = timedelta(days=settings.date_tolerance_days)
        window = context.window
        records = await self._store.run(
            units.paid_between,
            _ms(window.start - margin),
            _ms(window.end + margin),
        )
        payments = [self._payment(r, window.start_ms, window.end_ms) for r in records]
        stop = threading.Event()
        try:
            report, summaries, transactions = await asyncio.to_thread(
                self._match, files, payments, stop, context
            )
        finally:
            stop.set()  # a run cut off by its time limit stops reading at the next thousand entries
        for summary in summaries:
            if summary.rolls_forward is False or (
                summary.kind == "camt.053" and summary.rolls_forward is None
            ):
                # A camt.053 must carry its balances: one without them cannot be checked, and says so.
                report.findings.append(_not_rolling(summary))
                report.counts["statement_does_not_roll_forward"] += 1
        await self._ask_platform(report, window.end_ms)
        directory = settings.reports_dir / self.name / context.stamp
        paths = [*report.write(directory), self._page(context, report, files, transactions, directory)]
        _move(files, settings.inbox / DONE / context.stamp)
        counts = {"files": len(files), "statements": len(summaries), "transactions": transactions}
        counts.update(report.counts)
        return RunResult(counts, tuple(str(p) for p in paths))

    def _payment(self, record: PaymentRecord, start_ms: int, end_ms: int) -> Payment:
        paid_on = datetime.fromtimestamp(record.updated_ms / 1000, UTC).astimezone(self._settings.zone).date()
        due = start_ms <= record.updated_ms < end_ms
        return Payment(
            record.reference,
            record.amount,
            paid_on,
            record.transaction_id,
            record.dossier_code,
            applicant_key(record.dossier),
            due,
        )

    def _match(
        self, files: list[Path], payments: list[Payment], stop: threading.Event, context: RunContext
    ) -> tuple[Report, list[StatementSummary], int]:
        settings = self._settings
        matcher = Matcher(
            payments,
            date_tolerance_days=settings.date_tolerance_days,
            amount_tolerance=settings.amount_tolerance,
            payer_threshold=settings.payer_threshold,
        )
        summaries: list[StatementSummary] = []
        transactions = 0

        def transactions_of(path: Path) -> Iterator[Transaction]:
            nonlocal transactions
            layout = _layout_for(path, settings.layouts)
            for item in read_statements(path, csv_layout=layout, max_bytes=settings.max_file_bytes):
                if isinstance(item, Transaction):
                    transactions += 1
                    yield item
                    if transactions % 1000 == 0:
                        if stop.is_set():
                            raise TimeoutError("stopped: the run was cut off")
                        context.report("bank transactions read", transactions)
                else:
                    summaries.append(item)

        for n, path in enumerate(files, 1):
            matcher.add_all(transactions_of(path), path.name, last=n == len(files))
        return matcher.finish(), summaries, transactions

    async def _ask_platform(self, report: Report, before_ms: int) -> None:
        unsettled = await self._store.run(units.unsettled_payments, before_ms, MAX_QUERIES + 1)
        if len(unsettled) > MAX_QUERIES:
            report.counts["unsettled_not_asked"] += 1  # at least one more; the next run asks again
            unsettled = unsettled[:MAX_QUERIES]
        for payment in unsettled:
            said = await self._platform_says(payment.reference)
            report.counts["unsettled_payment"] += 1
            report.findings.append(
                Finding(
                    "unsettled_payment", payment.reference, None, payment.amount, None, -1, 0,
                    f"{payment.status} here since {_local(payment.updated_ms, self._settings.zone)};"
                    f" the payment platform says: {said}",
                )
            )  # fmt: skip

    async def _platform_says(self, reference: str) -> str:
        if self._query is None:
            return "not asked (no payment platform configured: payments.paygov)"
        try:
            answer = await self._query(reference)
        except LienthongError as exc:
            return f"could not be asked ({exc})"
        if answer is None:
            return "unknown to the platform"
        return _PLATFORM_STATES.get(answer.TrangThaiGD, f"state {answer.TrangThaiGD!r}")

    def _page(
        self, context: RunContext, report: Report, files: list[Path], transactions: int, directory: Path
    ) -> Path:
        window = context.window
        start, end = window.start.isoformat(timespec="minutes"), window.end.isoformat(timespec="minutes")
        summary = [
            ("window", f"{start} to {end}"),
            ("statement files", ", ".join(p.name for p in files)),
            ("transactions read", f"{transactions:,}"),
            ("matched by reference", f"{report.counts.get('matched', 0):,}"),
            ("matched by amount and date", f"{report.counts.get('matched_by_amount_and_date', 0):,}"),
            ("left out (debits, not booked, reversals)", f"{report.counts.get('ignored', 0):,}"),
        ]  # fmt: skip
        categories = {kind: report.counts.get(kind, 0) for kind in ADVICE}
        discrepancies = [
            Discrepancy(f.kind, f.reference, f.detail, f"{f.file}:{f.line}" if f.line else f.file)
            for f in report.findings
        ]
        page = RunPage(
            title="Bank reconciliation",
            run_id=context.run_id,
            outcome="succeeded",
            summary=summary,
            categories=categories,
            advice=ADVICE,
            discrepancies=discrepancies,
        )
        return write_page(page, directory / "index.html")


def applicant_key(dossier: str) -> str:
    """Who a payment's dossier is for, as a digest of the applicant's ID number (else their name): enough
    to tell related dossiers apart, and no personal data kept in the run's memory or its findings."""
    try:
        applicant = orjson.loads(dossier).get("applicant")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    if not isinstance(applicant, dict):
        return ""
    who = applicant.get("id_number") or applicant.get("full_name")
    return hashlib.sha256(str(who).encode()).hexdigest()[:32] if who else ""


def statement_files(inbox: Path) -> list[Path]:
    """The files waiting in ``inbox`` (not hidden, not already done), in name order."""
    if not inbox.is_dir():
        return []
    return sorted(p for p in inbox.iterdir() if p.is_file() and not p.name.startswith("."))


def _layout_for(path: Path, layouts: dict[str, CsvLayout]) -> CsvLayout | None:
    for layout in layouts.values():
        if fnmatch.fnmatch(path.name, layout.files):
            return layout
    return None


def _not_rolling(summary: StatementSummary) -> Finding:
    opening, closing = summary.opening, summary.closing
    if opening is None or closing is None:
        return Finding(
            "statement_does_not_roll_forward", summary.id or f"statement {summary.index}", None, None,
            None, summary.index, summary.line,
            "a statement without its opening or closing booked balance (OPBD or PRCD, CLBD): it cannot"
            " be checked", Path(summary.file).name,
        )  # fmt: skip
    expected = opening + summary.booked_sum
    return Finding(
        "statement_does_not_roll_forward",
        summary.id or f"statement {summary.index}",
        closing,
        None,
        None,
        summary.index,
        summary.line,
        f"opening {opening:,} + booked entries {summary.booked_sum:+,} = {expected:,},"
        f" but the closing balance is {closing:,}",
        Path(summary.file).name,
    )


def _move(files: list[Path], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for path in files:
        path.rename(into / path.name)


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _local(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).isoformat(timespec="minutes")
