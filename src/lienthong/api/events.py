"""``POST /v1/events`` and ``GET /v1/messages/{id}``."""

# No ``from __future__ import annotations`` here: FastAPI reads the dependency annotations at run time, and
# ``Authenticated`` is local to the router factory.
import dataclasses
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from lienthong.api.auth import BearerAuth, Caller
from lienthong.api.errors import error_response
from lienthong.bus.emit import refused_from_outside
from lienthong.bus.envelope import parse_body
from lienthong.bus.ingest import Ingestor
from lienthong.errors import IdempotencyConflict, InvalidEvent
from lienthong.model import IngestResult
from lienthong.observability.metrics import Metrics
from lienthong.store import Store, units


def events_router(
    *,
    ingestor: Ingestor,
    store: Store,
    metrics: Metrics,
    auth: BearerAuth,
    dossier_code_field: str,
    max_batch_events: int,
) -> APIRouter:
    router = APIRouter()
    Authenticated = Annotated[Caller, Depends(auth)]

    @router.post("/v1/events", status_code=202, responses={400: {}, 401: {}, 409: {}, 413: {}, 422: {}})
    async def post_events(request: Request, caller: Authenticated) -> Response:
        """Accept one event, or a batch ``{"events": [...]}``; 202 once stored durably."""
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
        payload: Any = {"results": [_result(r) for r in results]} if is_batch else _result(results[0])
        return Response(orjson.dumps(payload), 202, media_type="application/json")

    @router.get("/v1/messages/{message_id}", responses={401: {}, 404: {}})
    async def get_message(message_id: str, caller: Authenticated) -> Response:
        """A delivery's state and every attempt made."""
        view = await store.run(units.message, message_id)
        if view is None or not caller.may_read(view.caller):  # another's message is as good as none
            return error_response(404, "not_found", f"no message {message_id[:64]!r}")
        return Response(orjson.dumps(dataclasses.asdict(view)), media_type="application/json")

    return router


def _result(result: IngestResult) -> dict[str, Any]:
    return {
        "event_id": result.event_id,
        "message_ids": list(result.message_ids),
        "duplicate": result.duplicate,
    }
