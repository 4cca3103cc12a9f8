"""Events lienthong itself raises (a receipt issued), accepted through ingest like the province's own.

An adapter that causes something the province must hear of emits an event; routes then deliver it like
any other (to the provincial webhook, say). Event ids are derived from what happened, so emitting again
after a retry is a duplicate, accepted once.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from lienthong.bus.envelope import ParsedEvent, parse_body
from lienthong.bus.ingest import Ingestor
from lienthong.model import IngestItem, Message, Outcome

INTERNAL_EVENT_TYPES = frozenset({"payment.confirmed", "receipt.issued", "delivery.failed"})
"""Types only lienthong raises; the API refuses them from outside. ``payment.confirmed`` comes from a
verified callback only (decision 0007): from outside it would be a receipt without a payment."""
INTERNAL_ID_PREFIX = "lienthong:"
"""Event ids lienthong gives the events it raises; the API refuses ids with it from outside, so no caller
can take one first and block the event it stands for."""
_PLAIN = re.compile(r"^[\x21-\x7e]{1,100}$")


def internal_event_id(kind: str, *parts: str) -> str:
    """``lienthong:<kind>:<part>:…``, the same for the same parts; parts that would not make a plain
    printable id of at most 128 characters are replaced by their SHA-256 (still the same for the same)."""
    text = ":".join((kind, *parts))
    if _PLAIN.match(text):
        return f"{INTERNAL_ID_PREFIX}{text}"
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:48]
    return f"{INTERNAL_ID_PREFIX}{kind}:sha256:{digest}"


class EventSink:
    def __init__(self, dossier_code_field: str) -> None:
        self._code_field = dossier_code_field
        self._ingestor: Ingestor | None = None

    def attach(self, ingestor: Ingestor) -> None:
        """Connect the ingestor (built after the adapters that emit, in the composition root)."""
        self._ingestor = ingestor

    def delivery_failed(self, delivery: Message, outcome: Outcome) -> IngestItem | None:
        """``delivery.failed`` for a new dead letter, so a route can tell a person (the province); the
        dispatcher stores it with the dead letter itself (``Outcome.raises``).

        A failed ``delivery.failed`` delivery raises nothing: no loops.
        """
        if delivery.event.type == "delivery.failed":
            return None
        at = datetime.fromtimestamp(outcome.finished_ms / 1000, UTC).isoformat()
        failure = {
            "message_id": delivery.message_id,
            "destination": delivery.destination,
            "operation": delivery.operation,
            "event_id": delivery.event.event_id,
            "event_type": delivery.event.type,
            "attempts": outcome.attempt,
            "error": outcome.error or "",
        }
        event = {
            "event_id": internal_event_id("failed", delivery.message_id, str(outcome.attempt)),
            "type": "delivery.failed",
            "occurred_at": at,
            "unit_code": delivery.event.unit_code,
            "dossier": {self._code_field: delivery.dossier_code, "failure": failure},
        }
        return self.plan(event, delivery.event.caller)

    async def receipt_issued(self, delivery: Message, receipt: dict[str, str]) -> None:
        """Raise ``receipt.issued`` for the payment ``delivery`` carried; ``receipt`` has provider, fkey,
        pattern, serial and number. The payment's time and the receipt's key make the event the same on
        every retry."""
        event = delivery.event
        await self.emit(
            {
                "event_id": internal_event_id("receipt", receipt["provider"], receipt["fkey"]),
                "type": "receipt.issued",
                "occurred_at": event.occurred_at,
                "unit_code": event.unit_code,
                "dossier": {**event.dossier, "receipt": receipt},
            },
            caller=event.caller,
        )

    async def emit(self, event: dict[str, Any], *, caller: str = "") -> None:
        """Store ``event`` as sent on behalf of ``caller`` (the sender of what caused it: it alone, and
        operators, may read its messages). Raises StoreError when it cannot be stored (the caller
        retries)."""
        assert self._ingestor is not None, "EventSink.attach was not called"
        await self._ingestor.accept([self._parse(event)], caller)

    def plan(self, event: dict[str, Any], caller: str) -> IngestItem:
        """``event`` parsed and routed, ready for a store operation that stores it with something else
        (a dead letter, a payment); raises InvalidEvent when it is not a valid event."""
        assert self._ingestor is not None, "EventSink.attach was not called"
        return self._ingestor.plan(self._parse(event), caller)

    def stored(self, items: list[IngestItem]) -> None:
        """``items`` planned here were stored: count them and wake the dispatcher."""
        assert self._ingestor is not None, "EventSink.attach was not called"
        self._ingestor.stored(items)

    def _parse(self, event: dict[str, Any]) -> ParsedEvent:
        (parsed,), _ = parse_body(orjson.dumps(event), dossier_code_field=self._code_field, max_events=1)
        return parsed
