"""``POST /v1/events`` and ``GET /v1/messages/{id}``."""

# No ``from __future__ import annotations`` here: FastAPI reads the dependency annotations at run time, and
# ``Authenticated`` is local to the router factory.
import dataclasses
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.routing import Route

from lienthong.api.auth import BearerAuth, Caller
from lienthong.api.errors import (
    BUSY,
    STORE_UNAVAILABLE,
    TOO_LARGE,
    UNAUTHORIZED,
    answer,
    error_response,
    refusals,
)
from lienthong.api.schemas import Accepted, BatchAccepted, events_request
from lienthong.bus.emit import refused_from_outside
from lienthong.bus.envelope import parse_body
from lienthong.bus.ingest import Ingestor
from lienthong.errors import IdempotencyConflict, InvalidEvent
from lienthong.model import AttemptView, MessageView
from lienthong.observability.metrics import Metrics
from lienthong.store import Store, units

PATH = "/v1/events"


def events_router(
    *,
    ingestor: Ingestor,
    store: Store,
    metrics: Metrics,
    auth: BearerAuth,
    dossier_code_field: str,
    max_batch_events: int,
    refusal: Callable[[], str | None] | None = None,
) -> tuple[APIRouter, Route]:
    """The router of ``POST /v1/events`` and ``GET /v1/messages/{id}``, and the plain route that serves
    ``POST /v1/events``: install it ahead of every other route (``app.router.routes.insert(0, route)``).

    The plain route runs the same endpoint without FastAPI's dependency solving and route wrappers: measured,
    they were a third of a one-event request's cost (decision 0024). The router's route documents it in
    OpenAPI, bearer security included, and is never reached for a POST.

    ``refusal``: why events must be refused now (503), e.g. the message log has gone too long without a
    timestamp; None accepts."""
    router = APIRouter()
    Authenticated = Annotated[Caller, Depends(auth)]

    @router.post(
        PATH,
        status_code=202,
        responses=_EVENTS_ANSWERS,
        openapi_extra={
            "requestBody": events_request(dossier_code_field=dossier_code_field, max_events=max_batch_events),
            "security": [{auth.scheme_name: []}],
        },
    )
    async def post_events(request: Request) -> Response:
        """Accept one event, or a batch ``{"events": [...]}``; 202 once stored durably.

        A repeat of an event already taken (same ``event_id``, same content) answers the ids it got then,
        with ``duplicate: true``."""
        caller = await auth(request)  # not a dependency: the plain route has none (see above)
        refused_now = refusal() if refusal is not None else None
        if refused_now is not None:
            return error_response(503, "log_not_timestamped", refused_now, headers={"retry-after": "60"})
        body = await request.body()
        try:
            parsed, is_batch = parse_body(
                body, dossier_code_field=dossier_code_field, max_events=max_batch_events
            )
        except InvalidEvent as exc:
            metrics.events_received.labels("unknown", "rejected").inc()
            status, code = (400, "malformed_json") if exc.malformed else (422, "invalid_event")
            return error_response(status, code, exc.message, path=exc.path or None)
        for index, event in enumerate(parsed):
            refused = refused_from_outside(event.event)
            if refused is not None:
                field, message = refused
                path = f"events[{index}].{field}" if is_batch else field
                return error_response(422, "invalid_event", message, path=path)
        try:
            results = await ingestor.accept(parsed, caller.name)
        except IdempotencyConflict as exc:
            return error_response(409, "event_id_reused", str(exc), path="event_id")
        # orjson writes the IngestResult dataclasses itself (fields in order, the tuple of ids as an array).
        payload: Any = {"results": results} if is_batch else results[0]
        return Response(orjson.dumps(payload), 202, media_type="application/json")

    @router.get("/v1/messages/{message_id}", responses=_MESSAGE_ANSWERS)
    async def get_message(message_id: str, caller: Authenticated) -> Response:
        """A delivery's state and every attempt made."""
        view = await store.run(units.message, message_id)
        if view is None or not caller.may_read(view.caller):  # another's message is as good as none
            return error_response(404, "not_found", f"no message {message_id[:64]!r}")
        return Response(orjson.dumps(dataclasses.asdict(view)), media_type="application/json")

    return router, Route(PATH, post_events, methods=["POST"], include_in_schema=False)


_ACCEPTED_EXAMPLE = {
    "event_id": "evt-000123",
    "message_ids": ["m-0651f2a3c4d5e6000001a1b2c3"],
    "duplicate": False,
}
_EVENTS_ANSWERS = {
    202: {
        "model": Accepted | BatchAccepted,
        "description": "Stored durably: one result for one event, ``results`` for a batch",
        "content": {
            "application/json": {
                "examples": {
                    "one_event": {"value": _ACCEPTED_EXAMPLE},
                    "batch": {"value": {"results": [_ACCEPTED_EXAMPLE]}},
                }
            }
        },
    },
    **refusals(
        {
            400: "The body is not JSON, or not a JSON object (`malformed_json`)",
            401: UNAUTHORIZED,
            409: "This `event_id` was taken before with other content (`event_id_reused`)",
            413: TOO_LARGE,
            422: "An event is not valid, or the batch is too large (`invalid_event`); `path` names the field",
            503: BUSY + "; or the message log has gone too long without a timestamp (`log_not_timestamped`)",
        }
    ),
}
_MESSAGE_EXAMPLE = MessageView(
    message_id="m-0651f2a3c4d5e6000001a1b2c3",
    event_id="evt-000123",
    destination="portal",
    operation="DongBoHoSoMC",
    dossier_code="H56.12-260302-0001",
    status="delivered",
    attempts=2,
    created_ms=1772414100000,
    updated_ms=1772414103250,
    next_attempt_ms=1772414101000,
    last_error=None,
    mapping="bundled:portal_dossier",
    mapping_hash="3f1c9a",
    history=(
        AttemptView(1, 1772414100100, 2000, "retry", "portal answered 503", 503),
        AttemptView(2, 1772414103000, 250, "delivered", None, 200),
    ),
    caller="province",
)
_MESSAGE_ANSWERS = {
    200: answer(MessageView, dataclasses.asdict(_MESSAGE_EXAMPLE), "The delivery's state and every attempt"),
    **refusals(
        {
            401: UNAUTHORIZED,
            404: "No such message, or another caller's (`not_found`)",
            503: STORE_UNAVAILABLE,
        }
    ),
}
