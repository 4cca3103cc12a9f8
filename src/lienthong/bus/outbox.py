"""The outbox as the rest of the bus sees it: async calls, each committed durably before it returns."""

from __future__ import annotations

from collections.abc import Callable

from lienthong.bus.committer import Committer
from lienthong.bus.ledger import LedgerEntry
from lienthong.bus.store import (
    ClaimedDelivery,
    DestinationStats,
    IngestItem,
    IngestResult,
    MessageView,
    OutboxStore,
    Outcome,
)

Clock = Callable[[], float]
"""Seconds since the epoch, like ``time.time``; injected so tests control time."""


class Outbox:
    """Async face of an OutboxStore. Operations from concurrent callers share transactions."""

    def __init__(self, open_store: Callable[[], OutboxStore], *, clock: Clock) -> None:
        self._committer: Committer[OutboxStore] = Committer(open_store)
        self._clock = clock

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def open(self) -> None:
        """Open the store (creating or checking its schema). Blocks briefly; call once at start-up."""
        self._committer.start()

    def close(self) -> None:
        self._committer.close()

    async def recover(self) -> int:
        return await self._committer.call(lambda s: s.recover())

    async def ingest(self, items: list[IngestItem]) -> list[IngestResult]:
        now = self.now_ms()
        return await self._committer.call(lambda s: s.ingest(items, now))

    async def claim(self, limit: int) -> list[ClaimedDelivery]:
        now = self.now_ms()
        return await self._committer.call(lambda s: s.claim(now, limit))

    async def complete(self, outcomes: list[Outcome]) -> None:
        await self._committer.call(lambda s: s.complete(outcomes))

    async def message(self, message_id: str) -> MessageView | None:
        return await self._committer.call(lambda s: s.message(message_id))

    async def stats(self) -> list[DestinationStats]:
        return await self._committer.call(lambda s: s.stats())

    async def ledger_entry(self, dossier_code: str) -> LedgerEntry | None:
        return await self._committer.call(lambda s: s.ledger_entry(dossier_code))
