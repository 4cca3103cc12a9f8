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

from pydantic import ValidationError

from lienthong.bus.envelope import Event, derive, invalid_event
from lienthong.bus.ingest import Ingestor
from lienthong.model import IngestItem, Message, Outcome

INTERNAL_EVENT_TYPES = frozenset(
    {"payment.confirmed", "receipt.issued", "delivery.failed", "unit.below_target"}
)
"""Types only lienthong raises; the API refuses them from outside. ``payment.confirmed`` comes from a
verified callback only (decision 0007): from outside it would be a receipt without a payment."""
INTERNAL_ID_PREFIX = "lienthong:"
"""Event ids lienthong gives the events it raises; the API refuses ids with it from outside, so no caller
can take one first and block the event it stands for."""
_PLAIN = re.compile(r"^[\x21-\x7e]{1,100}$")


def refused_from_outside(event: Event) -> tuple[str, str] | None:
    """Why an event sent from outside (the API, a polled feed) is refused although it is valid: (the
    field, the reason), or None. Ids with lienthong's prefix are its own (taking one first would block
    the event it stands for), and so are the types only lienthong raises."""
    if event.event_id.startswith(INTERNAL_ID_PREFIX):
        return (
            "event_id",
            f"event ids starting with {INTERNAL_ID_PREFIX!r} are lienthong's own; choose another",
        )
    if event.type in INTERNAL_EVENT_TYPES:
        return "type", f"{event.type} events are raised by lienthong, not accepted from outside"
    return None


def internal_event_id(kind: str, *parts: str) -> str:
    """``lienthong:<kind>:<part>:…``, the same for the same parts; parts that would not make a plain
    printable id of at most 128 characters are replaced by their SHA-256 (still the same for the same)."""
    text = ":".join((kind, *parts))
    if _PLAIN.match(text):
        return f"{INTERNAL_ID_PREFIX}{text}"
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:48]
    return f"{INTERNAL_ID_PREFIX}{kind}:sha256:{digest}"


def build_event(**fields: Any) -> Event:
    """An event of lienthong's own, validated as a sent one is; raises InvalidEvent naming the field."""
    try:
        return Event.model_validate(fields)
    except ValidationError as exc:
        raise invalid_event(exc) from exc


class EventSink:
    """Where lienthong's own events enter the bus: stored at once (``emit``), or planned to be stored
    inside another unit of work (``plan``, then ``stored``)."""

    def __init__(self, dossier_code_field: str) -> None:
        self._code_field = dossier_code_field
        self._ingestor: Ingestor | None = None

    @property
    def dossier_code_field(self) -> str:
        """The key of the dossier code inside each event's ``dossier`` (``events.dossier_code_field``)."""
        return self._code_field

    def attach(self, ingestor: Ingestor) -> None:
        """Connect the ingestor (built after the adapters that emit, in the composition root)."""
        self._ingestor = ingestor

    def delivery_failed(self, message: Message, outcome: Outcome) -> IngestItem | None:
        """``delivery.failed`` for a new dead letter, so a route can tell a person (the province); the
        dispatcher's ``DeadLetterNotice`` stores it with the dead letter itself (``Outcome.raises``).

        A failed ``delivery.failed`` delivery raises nothing: no loops.
        """
        if message.event.type == "delivery.failed":
            return None
        failure = {
            "message_id": message.message_id,
            "destination": message.destination,
            "operation": message.operation,
            "event_id": message.event.event_id,
            "event_type": message.event.type,
            "attempts": outcome.attempt,
            "error": outcome.error or "",
        }
        event = build_event(
            event_id=internal_event_id("failed", message.message_id, str(outcome.attempt)),
            type="delivery.failed",
            occurred_at=datetime.fromtimestamp(outcome.finished_ms / 1000, UTC),
            unit_code=message.event.unit_code,
            dossier={self._code_field: message.dossier_code, "failure": failure},
        )
        return self.plan(event, message.event.caller)

    async def receipt_issued(self, message: Message, receipt: dict[str, str]) -> None:
        """Raise ``receipt.issued`` for the payment ``message`` carried; ``receipt`` has provider, fkey,
        pattern, serial and number. The payment's time and the receipt's key make the event the same on
        every retry."""
        event = message.event
        await self.emit(
            build_event(
                event_id=internal_event_id("receipt", receipt["provider"], receipt["fkey"]),
                type="receipt.issued",
                occurred_at=event.occurred_at,
                unit_code=event.unit_code,
                dossier={**event.dossier, "receipt": receipt},
            ),
            caller=event.caller,
        )

    async def emit(self, event: Event, *, caller: str = "") -> None:
        """Store ``event`` as sent on behalf of ``caller`` (the sender of what caused it: it alone, and
        operators, may read its messages). Raises StoreError when it cannot be stored (the caller
        retries)."""
        assert self._ingestor is not None, "EventSink.attach was not called"
        await self._ingestor.accept([derive(event, dossier_code_field=self._code_field)], caller)

    def plan(self, event: Event, caller: str) -> IngestItem:
        """``event`` routed, ready for a unit of work that stores it with something else (a dead letter,
        a payment); raises InvalidEvent when its dossier code is missing."""
        assert self._ingestor is not None, "EventSink.attach was not called"
        return self._ingestor.plan(derive(event, dossier_code_field=self._code_field), caller)

    def stored(self, items: list[IngestItem]) -> None:
        """``items`` planned here were stored: count them and wake the dispatcher."""
        assert self._ingestor is not None, "EventSink.attach was not called"
        self._ingestor.stored(items)
