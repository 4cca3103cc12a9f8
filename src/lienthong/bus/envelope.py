"""The inbound event envelope (DESIGN §2) and its parsing from raw request bodies.

The envelope is ours; ``dossier`` is in the provincial system's own schema, kept as it came.
Ingest is the hot path: bodies are decoded by orjson and then validated from Python objects, which measured
3.5x faster than pydantic's ``validate_json`` for events whose dossier is free-form JSON.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from lienthong.bus.decoding import decode, encode_event, refuse_wide_integers
from lienthong.errors import InvalidEvent

EventType = Literal[
    "dossier.received",
    "dossier.status_changed",
    "dossier.supplement_requested",
    "dossier.result_issued",
    "dossier.returned",
    "dossier.withdrawn",
    "payment.requested",
    "payment.confirmed",
    "receipt.issued",  # raised by lienthong itself (bus.emit); refused from outside
    "delivery.failed",  # likewise: a delivery became a dead letter
    "unit.below_target",  # likewise: the kpis job found a unit under a directive's target
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
UnitCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Event(BaseModel):
    """One event from the provincial system. ``event_id`` is the idempotency key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: EventId
    type: EventType
    occurred_at: AwareDatetime
    unit_code: UnitCode
    dossier: dict[str, Any]


class EventBatch(BaseModel):
    """A batch: ``{"events": [...]}``."""

    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(min_length=1)


_single = TypeAdapter(Event)
_batch = TypeAdapter(EventBatch)


class ParsedEvent(NamedTuple):
    """A validated event with what the bus derives from it once: its dossier code and payload hash.

    A NamedTuple, not a frozen dataclass: built for every event accepted, in 0.27 µs against 0.64."""

    event: Event
    dossier_code: str
    payload: bytes
    payload_sha256: str

    @property
    def occurred_at(self) -> datetime:
        return self.event.occurred_at


def parse_body(body: bytes, *, dossier_code_field: str, max_events: int) -> tuple[list[ParsedEvent], bool]:
    """Parse a request body holding one event or ``{"events": [...]}``.

    Returns the events and whether the body was a batch. Raises InvalidEvent naming the field path;
    ``malformed`` is set when the body is not JSON at all. A batch is counted, and each event's nesting
    bounded (``decoding.MAX_DEPTH``) as it is encoded for the store, before any event is validated.
    """
    data = decode(body)
    if not isinstance(data, dict):
        raise InvalidEvent('the body must be a JSON object: one event, or {"events": [...]}', malformed=True)
    is_batch = "events" in data
    raws = data["events"] if is_batch else [data]
    raws = raws if isinstance(raws, list) else []  # not a list: validation says so
    _check_count(raws, max_events)
    payloads = [encode_event(raw, f"events[{n}]" if is_batch else "") for n, raw in enumerate(raws)]
    try:
        events = _batch.validate_python(data).events if is_batch else [_single.validate_python(data)]
    except ValidationError as exc:
        raise invalid_event(exc) from exc
    refuse_wide_integers(body)
    parsed = [
        _derive(event, payload, index if is_batch else None, dossier_code_field)
        for index, (event, payload) in enumerate(zip(events, payloads, strict=True))
    ]
    return parsed, is_batch


def derive(event: Event, *, dossier_code_field: str) -> ParsedEvent:
    """An event built in code (lienthong's own), derived as ``parse_body`` derives a sent one: no JSON
    text in between. Raises InvalidEvent when its dossier code is missing or it nests too deep."""
    payload = encode_event(event.model_dump(mode="json"), "")
    return _derive(event, payload, None, dossier_code_field)


def _check_count(events: list[Any], max_events: int) -> None:
    """Count a batch before validating it: 30,000 events took 0.28 s of the event loop to be refused."""
    if len(events) > max_events:
        raise InvalidEvent(
            f"a batch holds at most {max_events} events, this one has {len(events)}", path="events"
        )


def _derive(event: Event, payload: bytes, index: int | None, field: str) -> ParsedEvent:
    prefix = f"events[{index}]." if index is not None else ""
    code = event.dossier.get(field)
    if not isinstance(code, str) or not code.strip():
        raise InvalidEvent(
            "the dossier code is missing or not a non-empty string", path=f"{prefix}dossier.{field}"
        )
    # The event as the provincial system sent it, keys sorted so that the same event always hashes the same.
    return ParsedEvent(event, code, payload, hashlib.sha256(payload).hexdigest())


def invalid_event(exc: ValidationError) -> InvalidEvent:
    first = exc.errors(include_url=False)[0]
    path = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in first["loc"]).replace(".[", "[")
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    # pydantic speaks of Python types; the sender wrote JSON.
    message = (
        first["msg"].replace("a valid dictionary", "a JSON object").replace("a valid list", "a JSON array")
    )
    return InvalidEvent(f"{message}{extra}", path=path)
