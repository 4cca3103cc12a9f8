"""The ``integrity-check`` and ``kpis`` jobs: the dossier ledger read in pages, checked, measured and
reported (JSON, CSV and the HTML page of ``reports``)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

from lienthong.bus.emit import EventSink, build_event, internal_event_id
from lienthong.checks.integrity import ADVICE, Integrity, IntegrityFinding, IntegrityRules
from lienthong.checks.kpis import KPIS, Kpis, Shortfall, Targets
from lienthong.model import LedgerEntry
from lienthong.observability.metrics import Metrics
from lienthong.reports import Discrepancy, RunPage, UnitBelowTarget, write_csv
from lienthong.reports import write as write_page
from lienthong.scheduler.jobs import RunContext, RunResult
from lienthong.scheduler.runs import RunRecord
from lienthong.store import Store, units

PAGE = 5_000
"""Dossiers read from the store in one call (one transaction) while a job scans the ledger."""


async def ledger(
    store: Store, context: RunContext | None = None, page: int = PAGE
) -> AsyncIterator[LedgerEntry]:
    """Every dossier of the ledger, a page at a time (no transaction held between pages); the count read
    so far reported to ``context`` after each page."""
    after, read = "", 0
    while entries := await store.run(units.ledger_page, after, page):
        for entry in entries:
            yield entry
        after = entries[-1].dossier_code
        read += len(entries)
        if context is not None:
            context.report("dossiers read", read)


def run_directory(reports_dir: Path, job: str, context: RunContext) -> Path:
    """``reports_dir/<job>/<window end>-<attempt>/``."""
    return reports_dir / job / context.stamp


class IntegrityJob:
    """``integrity-check``: every check of ``checks.integrity`` over the whole ledger, as of the window's
    end."""

    name = "integrity-check"

    def __init__(self, store: Store, rules: IntegrityRules, reports_dir: Path, metrics: Metrics) -> None:
        self._store = store
        self._rules = rules
        self._reports_dir = reports_dir
        self._metrics = metrics

    async def __call__(self, context: RunContext) -> RunResult:
        integrity = Integrity(self._rules, context.window.end)
        async for entry in ledger(self._store, context):
            integrity.add(entry)
        counts, findings = integrity.finish()
        self._metrics.rows_processed.labels(self.name).inc(counts["dossiers"])
        for kind in ADVICE:
            self._metrics.discrepancies.labels(self.name, kind).set(counts.get(kind, 0))
        directory = run_directory(self._reports_dir, self.name, context)
        paths = [
            *_write_findings(directory, counts, findings),
            self._page(context, counts, findings, directory),
        ]
        return RunResult(dict(counts), tuple(str(p) for p in paths))

    def _page(
        self, context: RunContext, counts: Counter[str], findings: list[IntegrityFinding], directory: Path
    ) -> Path:
        page = RunPage(
            title="Integrity checks",
            run_id=context.run_id,
            outcome="succeeded",
            summary=[
                ("as of", context.window.end.isoformat(timespec="minutes")),
                ("dossiers checked", f"{counts['dossiers']:,}"),
            ],
            categories={kind: counts.get(kind, 0) for kind in ADVICE},
            advice=ADVICE,
            discrepancies=[Discrepancy(f.kind, f.dossier_code, f.detail, f.unit_code) for f in findings],
        )
        return write_page(page, directory / "index.html")


@dataclass(frozen=True)
class KpiSettings:
    period_days: int
    targets: Targets
    provincial_centres: frozenset[str]
    raise_events: bool
    reports_dir: Path


class KpiRow(NamedTuple):
    """One unit's rate of one KPI against its target, as the ``kpis`` job's report lists them."""

    unit: str
    kpi: str
    rate: float | None
    target: float
    below: bool


KPI_REPORT = "kpis.json"
MAX_REPORT_BYTES = 20_000_000


def read_kpi_rows(run: RunRecord) -> list[KpiRow]:
    """The rows of a ``kpis`` run's report. LookupError saying why when they cannot be read here: the
    run wrote none, or wrote it on another node's disk, or the file is not one this version wrote."""
    path = next((Path(p) for p in run.reports if Path(p).name == KPI_REPORT), None)
    if path is None:
        raise LookupError(f"the run {run.run_id} wrote no {KPI_REPORT}")
    try:
        with path.open("rb") as report:
            data = report.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        raise LookupError(
            f"{path} cannot be read here ({exc.strerror}): the run {run.run_id} ran on node"
            f" {run.node or '?'}, which keeps its reports"
        ) from exc
    if len(data) > MAX_REPORT_BYTES:
        raise LookupError(f"{path} is larger than {MAX_REPORT_BYTES:,} bytes")
    try:
        return [_kpi_row(row) for row in json.loads(data)["rows"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise LookupError(f"{path} is not a KPI report of this version: {exc}") from exc


def _kpi_row(row: dict[str, object]) -> KpiRow:
    unit, kpi, rate, target, below = (row[f] for f in KpiRow._fields)
    if not (
        isinstance(unit, str)
        and isinstance(kpi, str)
        and (rate is None or isinstance(rate, int | float))
        and isinstance(target, int | float)
        and isinstance(below, bool)
    ):
        raise TypeError(f"a row of unexpected types: {row!r:.200}")
    return KpiRow(unit, kpi, None if rate is None else float(rate), float(target), below)


class KpiJob:
    """``kpis``: every unit's rates over the period ending at the window's end, exported as gauges; each
    unit under a target raises ``unit.below_target``, once per unit, KPI and day (the event's id is made of
    them, and an event id is accepted once)."""

    name = "kpis"

    def __init__(self, store: Store, settings: KpiSettings, metrics: Metrics, events: EventSink) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._events = events

    async def __call__(self, context: RunContext) -> RunResult:
        settings = self._settings
        end = context.window.end
        kpis = Kpis(end - timedelta(days=settings.period_days), end)
        dossiers = 0
        async for entry in ledger(self._store, context):
            dossiers += 1
            kpis.add(entry)
        self._metrics.rows_processed.labels(self.name).inc(dossiers)
        rates = kpis.rates()
        for unit, by_kpi in rates.items():
            centre = unit in settings.provincial_centres
            for kpi, rate in by_kpi.items():
                self._metrics.unit_kpi_target[kpi].labels(unit).set(settings.targets.of(kpi, centre=centre))
                if rate is not None:
                    self._metrics.unit_kpi[kpi].labels(unit).set(rate)
        shortfalls = kpis.shortfalls(settings.targets, settings.provincial_centres)
        self._metrics.discrepancies.labels(self.name, "below_target").set(len(shortfalls))
        if settings.raise_events:
            for shortfall in shortfalls:
                await self._raise(shortfall, context)
        directory = run_directory(settings.reports_dir, self.name, context)
        paths = [
            *self._write(directory, rates, shortfalls),
            self._page(context, dossiers, shortfalls, directory),
        ]
        counts = {"dossiers": dossiers, "units": len(rates), "below_target": len(shortfalls)}
        return RunResult(counts, tuple(str(p) for p in paths))

    async def _raise(self, shortfall: Shortfall, context: RunContext) -> None:
        day = context.window.end.date().isoformat()
        await self._events.emit(
            build_event(
                event_id=internal_event_id("below-target", shortfall.unit, shortfall.kpi, day),
                type="unit.below_target",
                occurred_at=context.window.end,
                unit_code=shortfall.unit,
                dossier={
                    self._events.dossier_code_field: f"kpi:{shortfall.unit}",
                    "kpi": {
                        "name": shortfall.kpi,
                        "value": round(shortfall.value, 4),
                        "target": shortfall.target,
                        "numerator": shortfall.numerator,
                        "denominator": shortfall.denominator,
                        "period_days": self._settings.period_days,
                        "as_of": context.window.end.isoformat(),
                    },
                },
            )
        )

    def _write(
        self, directory: Path, rates: dict[str, dict[str, float | None]], shortfalls: list[Shortfall]
    ) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        as_json, as_csv = directory / "kpis.json", directory / "kpis.csv"
        below = {(s.unit, s.kpi) for s in shortfalls}
        rows = [
            KpiRow(
                unit, kpi, by_kpi[kpi], self._settings.targets.of(kpi, centre=centre), (unit, kpi) in below
            )
            for unit, by_kpi in rates.items()
            for centre in [unit in self._settings.provincial_centres]
            for kpi in KPIS
        ]
        with as_json.open("w", encoding="utf-8") as out:
            json.dump(
                {
                    "rates": rates,
                    "below_target": [asdict(s) for s in shortfalls],
                    "rows": [row._asdict() for row in rows],
                },
                out,
                ensure_ascii=False,
            )
        write_csv(
            as_csv,
            ["unit", "kpi", "rate", "target", "below_target"],
            [[r.unit, r.kpi, "" if r.rate is None else f"{r.rate:.4f}", r.target, r.below] for r in rows],
        )
        return [as_json, as_csv]

    def _page(self, context: RunContext, dossiers: int, shortfalls: list[Shortfall], directory: Path) -> Path:
        days = self._settings.period_days
        page = RunPage(
            title="KPIs by unit",
            run_id=context.run_id,
            outcome="succeeded",
            summary=[
                ("period", f"the {days} days to {context.window.end.isoformat(timespec='minutes')}"),
                ("dossiers in the ledger", f"{dossiers:,}"),
                ("units below a target", f"{len({s.unit for s in shortfalls}):,}"),
            ],
            categories=dict(Counter(s.kpi for s in shortfalls)),
            advice={},
            units_below_target=[UnitBelowTarget(s.unit, s.kpi, s.value, s.target) for s in shortfalls],
        )
        return write_page(page, directory / "index.html")


def _write_findings(directory: Path, counts: Counter[str], findings: list[IntegrityFinding]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    as_json, as_csv = directory / "findings.json", directory / "findings.csv"
    rows = [asdict(f) for f in findings]
    with as_json.open("w", encoding="utf-8") as out:
        json.dump({"counts": dict(counts), "findings": rows}, out, ensure_ascii=False)
    fields = list(IntegrityFinding.__dataclass_fields__)
    write_csv(as_csv, fields, ([row[f] for f in fields] for row in rows))
    return [as_json, as_csv]
