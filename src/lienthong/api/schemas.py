"""What the API answers, as types for its OpenAPI document (the handlers write their bodies with orjson).

The handlers build plain dicts for speed; these types say what those dicts hold, so the document can show
them. Where a handler serialises one of lienthong's own records (``MessageView``), the document uses that
record itself, so the two cannot drift. ``tests/test_schemathesis_api.py`` checks real answers against it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

from lienthong.bus.decoding import MAX_DEPTH
from lienthong.bus.emit import INTERNAL_EVENT_TYPES, INTERNAL_ID_PREFIX
from lienthong.bus.envelope import EVENT_TYPES, Event
from lienthong.payments.records import PaymentStatus


@with_config(ConfigDict(extra="forbid"))
class ErrorDetail(TypedDict):
    """What was refused and why."""

    code: Annotated[str, Field(description="Stable and machine-readable: `invalid_event`, `unauthorized`…")]
    message: Annotated[str, Field(description="What was wrong and what to do, for a person.")]
    path: NotRequired[Annotated[str, Field(description="The field at fault: `events[2].dossier.code`.")]]


@with_config(ConfigDict(extra="forbid"))
class Error(TypedDict):
    """Every refusal: ``{"error": {"code", "message", "path"?}}``; ``path`` names the field at fault."""

    error: ErrorDetail


@with_config(ConfigDict(extra="forbid"))
class Accepted(TypedDict):
    """One event taken: the ids of the deliveries it was routed to (the same ids when it is a repeat)."""

    event_id: str
    message_ids: list[str]
    duplicate: bool


@with_config(ConfigDict(extra="forbid"))
class BatchAccepted(TypedDict):
    """A batch taken, all of it in one transaction: one result per event, in order."""

    results: list[Accepted]


@with_config(ConfigDict(extra="forbid"))
class Citizen(TypedDict):
    """The e-form's fields for one citizen; ``request_id`` names the audit record of the look-up."""

    request_id: str
    form: str
    fields: dict[str, Any]


@with_config(ConfigDict(extra="forbid"))
class PaymentState(TypedDict):
    """A payment lienthong asked the payment platform for, and where it stands."""

    reference: str
    dossier_code: str
    unit_code: str
    amount: int
    pay_url: str
    status: PaymentStatus
    transaction_id: str
    updated_ms: int
    channel: str


@with_config(ConfigDict(extra="forbid"))
class PayGovReply(TypedDict):
    """The payment platform's own answer to its confirm callback; ``MaLoi`` "00" means taken."""

    MaLoi: str
    MoTaLoi: str
    MaDoiTac: str
    ThoiGianGD: str
    MaXacThuc: str


@with_config(ConfigDict(extra="forbid"))
class BankAnswer(TypedDict):
    """A bank notification taken: ``accepted``, a ``repeat`` of one taken before, a ``duplicate_payment``
    (recorded for a person to look at), or ``stale`` news of another transaction (recorded, nothing moved)."""

    status: Literal["accepted", "repeat", "duplicate_payment", "stale"]


@with_config(ConfigDict(extra="forbid"))
class Health(TypedDict):
    status: Literal["ok", "ready"]


def events_request(*, dossier_code_field: str, max_events: int) -> dict[str, Any]:
    """The ``requestBody`` of ``POST /v1/events``: one event or a batch, as the parser's own models say
    (``bus.envelope``), with what the parser checks beyond them written in: the dossier's code field, the
    batch's size, and the types and ids only lienthong may use. The body is still read by hand (orjson,
    then the models): this is the document only, and costs ingest nothing."""
    event = TypeAdapter(Event).json_schema()
    event["properties"]["type"]["enum"] = [t for t in EVENT_TYPES if t not in INTERNAL_EVENT_TYPES]
    event["properties"]["event_id"]["description"] = (
        f"The idempotency key: the same id with the same content is accepted once; not starting with"
        f" {INTERNAL_ID_PREFIX!r}."
    )
    event["properties"]["dossier"] = {
        "type": "object",
        "description": "The dossier in the provincial system's own schema, kept as it came"
        f" (at most {MAX_DEPTH} levels of nesting in the event; integers within 64 bits).",
        "required": [dossier_code_field],
        "properties": {dossier_code_field: {"type": "string", "minLength": 1, "pattern": r"\S"}},
    }
    batch = {
        "title": "EventBatch",
        "type": "object",
        "description": "Several events, stored all together or none.",
        "properties": {"events": {"type": "array", "items": event, "minItems": 1, "maxItems": max_events}},
        "required": ["events"],
        "additionalProperties": False,
    }
    example = _example_event(dossier_code_field)
    examples = {
        "one_event": {"summary": "One event", "value": example},
        "batch": {
            "summary": "A batch",
            "value": {"events": [{**example, "event_id": "evt-000124", "type": "dossier.status_changed"}]},
        },
    }
    content = {"schema": {"anyOf": [event, batch]}, "examples": examples}
    return {"required": True, "content": {"application/json": content}}


def _example_event(dossier_code_field: str) -> dict[str, Any]:
    return {
        "event_id": "evt-000123",
        "type": "dossier.received",
        "occurred_at": "2026-03-02T08:15:00+07:00",
        "unit_code": "000.00.12.H56",
        "dossier": {
            dossier_code_field: "H56.12-260302-0001",
            "procedure_code": "1.001193",
            "applicant": {"name": "Nguyễn Thị Thu Hà"},
        },
    }
