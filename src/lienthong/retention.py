"""The ``payload-retention`` job: events' payloads purged once their deliveries are settled and they are
older than ``retention.payloads_days``. The event's row stays, with its payload's SHA-256, and so do the
message log's records (hashes of the bytes sent): what was done stays provable, the citizen's data goes."""

from __future__ import annotations

from datetime import timedelta

from lienthong.scheduler.jobs import RunContext, RunResult
from lienthong.store import Store, units

PAGE = 1000


class PayloadRetention:
    """Purges, page by page (one transaction each), the payloads of settled events received before the
    window's end less ``days``; an event with a message pending, in flight or dead keeps its payload."""

    name = "payload-retention"

    def __init__(self, store: Store, days: float | None) -> None:
        self._store = store
        self._days = days

    async def __call__(self, context: RunContext) -> RunResult:
        if self._days is None:
            return RunResult({"purged": 0})
        cut = context.window.end - timedelta(days=self._days)
        cut_ms = int(cut.timestamp() * 1000)
        after, read, purged = "", 0, 0
        while True:
            last, count = await self._store.run(units.purge_payloads, after, PAGE, cut_ms)
            if last is None:
                break
            after, purged = last, purged + count
            read += PAGE
            context.report("events read", read)
        return RunResult({"purged": purged})
