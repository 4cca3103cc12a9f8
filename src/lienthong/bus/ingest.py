"""Accepting events: route each to its deliveries and store it with its outbox rows and ledger update."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

from lienthong.bus.envelope import ParsedEvent
from lienthong.bus.ledger import project
from lienthong.bus.outbox import Outbox
from lienthong.bus.store import IngestItem, IngestResult, PlannedDelivery
from lienthong.errors import IdempotencyConflict
from lienthong.observability.metrics import Metrics

RouteTable = Mapping[str, Sequence[tuple[str, str]]]
"""Event type → the (destination, operation) pairs it is delivered to."""


def message_id(event_id: str, destination: str, operation: str) -> str:
    """A delivery's id, derived from what it is: the same event routed the same way has the same id.

    It doubles as the idempotency key sent to the destination.
    """
    digest = hashlib.sha256(f"{event_id}\x1f{destination}\x1f{operation}".encode()).hexdigest()
    return f"m-{digest[:30]}"


class Ingestor:
    """Turns parsed events into stored events and outbox rows; the same event_id twice is stored once."""

    def __init__(
        self, outbox: Outbox, routes: RouteTable, metrics: Metrics, on_accepted: Callable[[], None]
    ) -> None:
        self._outbox = outbox
        self._routes = routes
        self._metrics = metrics
        self._on_accepted = on_accepted

    def plan(self, parsed: ParsedEvent) -> IngestItem:
        event = parsed.event
        deliveries = tuple(
            PlannedDelivery(message_id(event.event_id, dest, op), dest, op)
            for dest, op in self._routes.get(event.type, ())
        )
        return IngestItem(parsed, deliveries, project(parsed))

    async def accept(self, events: list[ParsedEvent]) -> list[IngestResult]:
        """Store all of ``events`` atomically, or none of them (IdempotencyConflict)."""
        try:
            results = await self._outbox.ingest([self.plan(e) for e in events])
        except IdempotencyConflict:
            for e in events:
                self._metrics.events_received.labels(e.event.type, "rejected").inc()
            raise
        for parsed, result in zip(events, results, strict=True):
            outcome = "duplicate" if result.duplicate else "accepted"
            self._metrics.events_received.labels(parsed.event.type, outcome).inc()
        if any(not r.duplicate and r.message_ids for r in results):
            self._on_accepted()
        return results
