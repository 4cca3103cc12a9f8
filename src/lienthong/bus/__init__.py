"""Durable delivery: envelope, ingest, routes, dispatcher and its middleware, retry policy, dossier ledger.

What the bus keeps lives in ``lienthong.store``; the records it passes around in ``lienthong.model``.
"""

from lienthong.bus.envelope import EVENT_TYPES, Event, EventBatch, EventType, ParsedEvent, parse_body

__all__ = ["EVENT_TYPES", "Event", "EventBatch", "EventType", "ParsedEvent", "parse_body"]
