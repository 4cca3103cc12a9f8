"""The ``portal-reconcile`` job: the National Public Service Portal against the dossier ledger.

For each dossier whose last event occurred in the run's window, and each portal destination a route
syncs that event to (``DongBoHoSoMC``), the portal is asked for its record (``TraCuuHoSo``):

- **missing on the portal**: it has none;
- **status drift**: its ``TrangThaiHoSo`` is not what the route's mapping makes of the dossier's last
  event (the province's own codes stay the mapping's business);
- **in step**: nothing to do.

A dossier missing or drifted is *pushed again through the outbox*: a new message delivering its last
event to the portal (``units.push_again``), queued behind the dossier's waiting messages, delivered in
its order; it is never sent from here. A dossier the mapping refuses, or the portal cannot be asked
about, is a finding for a person.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from lienthong.adapters.portal import PortalAdapter
from lienthong.bus.ingest import MessageIds
from lienthong.bus.routes import DeliveryRoute, Mapper, Routes
from lienthong.checks.jobs import ledger, run_directory
from lienthong.clock import Clock, now_ms
from lienthong.errors import DeliveryError, MappingError
from lienthong.model import LedgerEntry, Message, PlannedMessage, StoredEvent
from lienthong.observability.metrics import Metrics
from lienthong.reports import Discrepancy, RunPage, write_csv
from lienthong.reports import write as write_page
from lienthong.scheduler.jobs import RunContext, RunResult
from lienthong.store import Store, units

OPERATION = "DongBoHoSoMC"
ADVICE = {
    "missing_on_portal": "Pushed again through the outbox; if it dies again, its dead letter says why.",
    "status_drift": "Pushed again through the outbox with the dossier's last status.",
    "cannot_map": "The route's mapping refuses the dossier: fix the spec, then run the job again.",
    "cannot_ask": "The portal could not be asked; the next run tries again.",
}


class PortalReconcile:
    """``portal-reconcile`` over the portal destinations ``portals``."""

    name = "portal-reconcile"

    def __init__(
        self,
        store: Store,
        routes: Routes,
        mapper: Mapper,
        portals: dict[str, PortalAdapter],
        *,
        reports_dir: Path,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._store = store
        self._routes = routes
        self._mapper = mapper
        self._portals = portals
        self._reports_dir = reports_dir
        self._metrics = metrics
        self._clock = clock
        self._new_id = MessageIds()

    async def __call__(self, context: RunContext) -> RunResult:
        window = context.window
        counts: Counter[str] = Counter()
        found: list[Discrepancy] = []
        async for entry in ledger(self._store, context):
            if not window.start_ms <= entry.occurred_ms < window.end_ms:
                continue
            counts["dossiers"] += 1
            event: StoredEvent | None = None
            for name, portal in self._portals.items():
                route = self._routes.route(entry.last_event_type, name, OPERATION)
                if route is None or not route.serves(entry.unit_code):
                    continue
                # The event once per dossier, whatever the number of portals.
                event = event or await self._store.run(units.stored_event, entry.last_event_id)
                if event is None:
                    break
                if route.when is not None and not route.takes(dataclasses.asdict(event)):
                    continue  # the route's condition leaves this dossier's last event to other portals
                kind, detail = await self._compare(entry, event, name, route, portal)
                if kind is None:
                    continue
                counts[kind] += 1
                if kind in ("missing_on_portal", "status_drift"):
                    planned = PlannedMessage(
                        self._new_id(), name, OPERATION, route.mapping.name, route.mapping.hash
                    )
                    await self._store.run(units.push_again, entry, (planned,), now_ms(self._clock))
                    counts["pushed_again"] += 1
                found.append(Discrepancy(kind, entry.dossier_code, detail, name))
        self._metrics.rows_processed.labels(self.name).inc(counts["dossiers"])
        for kind in ADVICE:
            self._metrics.discrepancies.labels(self.name, kind).set(counts.get(kind, 0))
        return RunResult(dict(counts), self._write(context, counts, found))

    async def _compare(
        self, entry: LedgerEntry, event: StoredEvent, name: str, route: DeliveryRoute, portal: PortalAdapter
    ) -> tuple[str | None, str]:
        message = Message(
            f"reconcile:{entry.dossier_code}", name, OPERATION, entry.dossier_code, 0, 0, event,
            route.mapping.name, route.mapping.hash,
        )  # fmt: skip
        try:
            expected = str((await self._mapper.body(message)).get("TrangThaiHoSo", ""))
        except MappingError as exc:
            return "cannot_map", exc.message
        try:
            record = await portal.lookup(entry.dossier_code, entry.unit_code)
        except DeliveryError as exc:
            return "cannot_ask", exc.message
        if record is None:
            return "missing_on_portal", f"the portal has no {entry.dossier_code}"
        actual = str(record.get("TrangThaiHoSo", ""))
        if actual != expected:
            return "status_drift", f"the portal says TrangThaiHoSo {actual!r}, its last event {expected!r}"
        return None, ""

    def _write(self, context: RunContext, counts: Counter[str], found: list[Discrepancy]) -> tuple[str, ...]:
        directory = run_directory(self._reports_dir, self.name, context)
        directory.mkdir(parents=True, exist_ok=True)
        as_csv = write_csv(
            directory / "findings.csv",
            ["kind", "dossier_code", "detail", "portal"],
            ([d.kind, d.reference, d.detail, d.where] for d in found),
        )
        page = RunPage(
            title="Portal reconciliation",
            run_id=context.run_id,
            outcome="succeeded",
            summary=[
                ("dossiers changed in the window", f"{counts['dossiers']:,}"),
                ("pushed again", f"{counts['pushed_again']:,}"),
            ],
            categories={kind: counts.get(kind, 0) for kind in ADVICE},
            advice=ADVICE,
            discrepancies=found,
        )
        return str(as_csv), str(write_page(page, directory / "index.html"))
