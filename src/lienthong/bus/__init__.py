"""Durable delivery: envelope, outbox stores, group commit, dispatcher, retry policy, dossier ledger."""

from lienthong.bus.envelope import EVENT_TYPES, Event, EventBatch, EventType, ParsedEvent, parse_body
from lienthong.bus.store import OutboxStore
from lienthong.model import (
    DestinationStats,
    IngestItem,
    IngestResult,
    LedgerEntry,
    Message,
    MessageView,
    Outcome,
    PlannedMessage,
    StoredEvent,
)

__all__ = [
    "EVENT_TYPES",
    "DestinationStats",
    "Event",
    "EventBatch",
    "EventType",
    "IngestItem",
    "IngestResult",
    "LedgerEntry",
    "Message",
    "MessageView",
    "OutboxStore",
    "Outcome",
    "ParsedEvent",
    "PlannedMessage",
    "StoredEvent",
    "parse_body",
]
