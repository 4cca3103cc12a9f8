"""Accepting events: route each to its deliveries and store it with its outbox rows and ledger update."""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from lienthong.bus.envelope import ParsedEvent
from lienthong.bus.ledger import project
from lienthong.bus.routes import Routes
from lienthong.clock import Clock, now_ms
from lienthong.errors import IdempotencyConflict
from lienthong.model import EventRecord, IngestItem, IngestResult, PlannedMessage
from lienthong.observability.logs import fields
from lienthong.observability.metrics import Metrics
from lienthong.store import Store, units

log = logging.getLogger("lienthong.bus.ingest")


class MessageIds:
    """New delivery ids: ``m-`` + microseconds since the epoch + a per-process counter + random bits.

    Ids grow with time, so they land at the end of the store's index instead of at random places in it
    (measured: a sizeable part of insert cost), and two nodes cannot collide. An id doubles as the
    idempotency key sent to the destination.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counter = itertools.count()
        self._node = secrets.token_hex(3)

    def __call__(self) -> str:
        return f"m-{int(self._clock() * 1_000_000):014x}{next(self._counter) & 0xFFFFFF:06x}{self._node}"


def as_condition_input(parsed: ParsedEvent) -> dict[str, Any]:
    """The event as route conditions read it, ``occurred_at`` in ISO 8601 (``datetime.isoformat``)."""
    event = parsed.event
    return {
        "event_id": event.event_id,
        "type": event.type,
        "occurred_at": event.occurred_at.isoformat(),
        "unit_code": event.unit_code,
        "dossier": event.dossier,
    }


class Ingestor:
    """Turns parsed events into stored events and outbox rows; the same event_id twice is stored once."""

    def __init__(
        self,
        store: Store,
        routes: Routes,
        metrics: Metrics,
        on_accepted: Callable[[], None],
        *,
        clock: Clock = time.time,
    ) -> None:
        self._store = store
        self._clock = clock
        self._routes = routes
        self._metrics = metrics
        self._on_accepted = on_accepted
        self._new_id = MessageIds()

    def plan(self, parsed: ParsedEvent, caller: str = "") -> IngestItem:
        new_id = self._new_id
        event = parsed.event
        routes = self._routes.for_type(event.type)
        if self._routes.read_content(event.type):
            seen = as_condition_input(parsed)
            taken = [r for r in routes if r.takes(seen)]
        else:  # no condition to read: the unit alone decides, with no dict built
            taken = [r for r in routes if r.serves(event.unit_code)]
        deliveries = tuple(
            PlannedMessage(new_id(), r.destination, r.operation, r.mapping.name, r.mapping.hash)
            for r in taken
        )
        return ingest_item(parsed, deliveries, caller)

    async def accept(self, events: list[ParsedEvent], caller: str = "") -> list[IngestResult]:
        """Store all of ``events`` atomically, or none of them (IdempotencyConflict); ``caller`` is who
        sent them ('' for lienthong's own)."""
        items = [self.plan(e, caller) for e in events]
        try:
            (answer,) = await self._store.run(units.ingest, [items], now_ms(self._clock))
            if isinstance(answer, IdempotencyConflict):
                raise answer
            results = answer
        except IdempotencyConflict:
            self._count(Counter((e.event.type, "rejected") for e in events))
            raise
        outcomes = zip(events, results, strict=True)
        self._count(Counter((p.event.type, "duplicate" if r.duplicate else "accepted") for p, r in outcomes))
        if any(not r.duplicate and r.message_ids for r in results):
            self._on_accepted()
        if log.isEnabledFor(logging.DEBUG):  # a line per event: a busy node takes thousands a second
            for parsed, result in zip(events, results, strict=True):
                said = "a duplicate, accepted before" if result.duplicate else "accepted"
                extra = fields(event_id=parsed.event.event_id, dossier_code=parsed.dossier_code)
                log.debug("%s %s from %s: messages %s", parsed.event.type, said, caller or "lienthong",
                          ", ".join(result.message_ids) or "none", extra=extra)  # fmt: skip
        return results

    def stored(self, items: list[IngestItem]) -> None:
        """``items`` were stored by another store operation (a payment settled): count them, and wake the
        dispatcher."""
        self._count(Counter((item.event.type, "accepted") for item in items))
        if any(item.deliveries for item in items):
            self._on_accepted()

    def _count(self, counts: Counter[tuple[str, str]]) -> None:
        for labels, n in counts.items():
            self._metrics.events_received.labels(*labels).inc(n)


def ingest_item(parsed: ParsedEvent, deliveries: tuple[PlannedMessage, ...], caller: str = "") -> IngestItem:
    """``parsed`` as the store keeps it, with its messages and ledger update; ``caller`` is who sent it."""
    event = parsed.event
    record = EventRecord(
        event.event_id,
        event.type,
        event.unit_code,
        parsed.dossier_code,
        event.occurred_at.isoformat(),
        parsed.payload_sha256,
        parsed.payload.decode(),
        caller,
    )
    return IngestItem(record, deliveries, project(parsed))
