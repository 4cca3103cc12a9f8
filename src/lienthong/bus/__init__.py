"""Durable delivery: envelope, outbox stores, group commit, dispatcher, retry policy, dossier ledger."""

from lienthong.bus.envelope import EVENT_TYPES, Event, EventBatch, EventType, ParsedEvent, parse_body
from lienthong.bus.ledger import LedgerEntry
from lienthong.bus.store import (
    ClaimedDelivery,
    DestinationStats,
    IngestItem,
    IngestResult,
    MessageView,
    OutboxStore,
    Outcome,
    PlannedDelivery,
    StoredEvent,
)

__all__ = [
    "EVENT_TYPES",
    "ClaimedDelivery",
    "DestinationStats",
    "Event",
    "EventBatch",
    "EventType",
    "IngestItem",
    "IngestResult",
    "LedgerEntry",
    "MessageView",
    "OutboxStore",
    "Outcome",
    "ParsedEvent",
    "PlannedDelivery",
    "StoredEvent",
    "parse_body",
]
