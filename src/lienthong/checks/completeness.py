"""The ``emc-completeness`` job: every event that should have reached EMC did.

For each EMC destination, the messages of events accepted in the run's window are looked at:

- a dead letter whose retries ran out (EMC was down or slow too long) is *pushed again*: replayed through
  the outbox with a fresh retry budget, recorded as the job's replay with the run id as its reason;
- a dead letter EMC refused (a permanent error) is a finding for a person: replaying it would be refused
  again;
- a message still pending or in flight past the window's end is counted (the dispatcher has it).

Nothing is sent to EMC from here: the outbox does it, in each dossier's order.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from lienthong.bus.middleware import GAVE_UP
from lienthong.checks.jobs import run_directory
from lienthong.clock import Clock, now_ms
from lienthong.model import MessageView, Replay
from lienthong.observability.metrics import Metrics
from lienthong.reports import Discrepancy, RunPage
from lienthong.reports import write as write_page
from lienthong.scheduler.jobs import RunContext, RunResult
from lienthong.store import Store, units

MAX_DEAD = 100_000
"""Dead letters read per destination per run (oldest first)."""
ADVICE = {
    "pushed_again": "EMC was unreachable too long; the step was queued again and needs nothing unless it"
    " dies again.",
    "refused_by_emc": "EMC refused the step: fix what its error names (the mapping, the site id), then"
    " `lienthong dlq replay` it.",
}


class EmcCompleteness:
    """``emc-completeness`` over the EMC destinations ``destinations``."""

    name = "emc-completeness"

    def __init__(
        self, store: Store, destinations: list[str], reports_dir: Path, metrics: Metrics, *, clock: Clock
    ) -> None:
        self._store = store
        self._destinations = destinations
        self._reports_dir = reports_dir
        self._metrics = metrics
        self._clock = clock

    async def __call__(self, context: RunContext) -> RunResult:
        window = context.window
        counts: Counter[str] = Counter()
        found: list[Discrepancy] = []
        for destination in self._destinations:
            dead = await self._store.run(units.dead_letters, destination, MAX_DEAD)
            ours = [d for d in dead if window.start_ms <= d.created_ms < window.end_ms]
            again = [d for d in ours if GAVE_UP in (d.last_error or "")]
            refused = [d for d in ours if GAVE_UP not in (d.last_error or "")]
            if again:
                replayed = await self._store.run(
                    units.replay,
                    [Replay(d.message_id) for d in again],
                    f"lienthong:{self.name}",
                    f"{context.run_id}: EMC must have every step of every dossier",
                    now_ms(self._clock),
                )
                counts["pushed_again"] += len(replayed)
                found += [
                    Discrepancy("pushed_again", d.dossier_code, d.last_error or "", d.message_id)
                    for d in again
                ]
            counts["refused_by_emc"] += len(refused)
            found += [
                Discrepancy("refused_by_emc", d.dossier_code, d.last_error or "", d.message_id)
                for d in refused
            ]
        for stats in await self._store.run(units.stats):
            if stats.destination in self._destinations:
                counts["not_yet_delivered"] += stats.pending + stats.inflight
        for kind in ADVICE:
            self._metrics.discrepancies.labels(self.name, kind).set(counts.get(kind, 0))
        directory = run_directory(self._reports_dir, self.name, context)
        directory.mkdir(parents=True, exist_ok=True)
        data = {"counts": dict(counts), "findings": [d.__dict__ for d in found]}
        as_json = directory / "findings.json"
        as_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        page = RunPage(
            title="EMC completeness",
            run_id=context.run_id,
            outcome="succeeded",
            summary=[("EMC destinations", ", ".join(self._destinations) or "none")],
            categories={kind: counts.get(kind, 0) for kind in ADVICE},
            advice=ADVICE,
            discrepancies=found,
        )
        html = write_page(page, directory / "index.html")
        return RunResult(dict(counts), (str(as_json), str(html)))


def _finding(kind: str, message: MessageView) -> Discrepancy:
    return Discrepancy(kind, message.dossier_code, message.last_error or "", message.message_id)
