"""One error body for every refusal: ``{"error": {"code", "message", "path"?}}``, and how the OpenAPI
document declares it (``refusals``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from lienthong.api.schemas import Error
from lienthong.errors import StoreError

# The headers some refusals carry, for the document.
RETRY_AFTER: dict[str, Any] = {
    "Retry-After": {"description": "Seconds to wait before sending again", "schema": {"type": "string"}}
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    429: RETRY_AFTER,
    503: RETRY_AFTER,
}
RATE_LIMITED = (
    "This caller is over its rate (`rate_limited`, `auth.rate_limit`); send again after `Retry-After`"
)
UNAUTHORIZED = "No bearer token, or not a valid one (`unauthorized`)"
STORE_UNAVAILABLE = "The store did not answer in time (`store_unavailable`); send the same request again"
TOO_LARGE = "The body is larger than `server.max_body_bytes` (`body_too_large`)"
MALFORMED_REQUEST = "The request is not valid HTTP/1.1 (`malformed_request`); the connection is closed"
HEADERS_TOO_LARGE = (
    "The request line and headers are larger than `server.max_header_bytes`, or have more lines than"
    " `server.max_headers` (`headers_too_large`); the connection is closed"
)
REQUEST_TIMEOUT = (
    "The request line and headers did not arrive within `server.header_timeout_s` (`request_timeout`); the"
    " connection is closed"
)
SERVER_BUSY = (
    "The node is reading as many bodies as it may at once (`server_busy`); send the same request again after"
    " `Retry-After`"
)
BEFORE_ANY_ROUTE: dict[int, tuple[str, str]] = {
    400: ("malformed_request", MALFORMED_REQUEST),
    408: ("request_timeout", REQUEST_TIMEOUT),
    413: ("body_too_large", TOO_LARGE),
    431: ("headers_too_large", HEADERS_TOO_LARGE),
    503: ("server_busy", SERVER_BUSY),
}
"""The refusals any request may get, whatever its operation, before its route sees it: from the HTTP
protocol's limits (``request_limits``: 400, 408, 431) and the body limits (``api.limits``: 413, 503). The
OpenAPI document declares them on every operation (``api.openapi``)."""
BUSY = (
    "The store did not answer in time (`store_unavailable`), or the node is reading as many bodies as it may"
    " at once (`server_busy`); send the same request again after `Retry-After`"
)


def refusals(described: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of these refusal statuses, each answering ``Error``."""
    return {
        status: {
            "model": Error,
            "description": text,
            **({"headers": _HEADERS[status]} if status in _HEADERS else {}),
        }
        for status, text in described.items()
    }


def answer(model: Any, example: Any, description: str) -> dict[str, Any]:
    """The OpenAPI ``responses`` entry of a success: its type and an example."""
    return {"model": model, "description": description, "content": {"application/json": {"example": example}}}


def error_response(
    status: int, code: str, message: str, *, path: str | None = None, headers: Any = None
) -> Response:
    error: dict[str, str] = {"code": code, "message": message}
    if path:
        error["path"] = path
    return Response(orjson.dumps({"error": error}), status, headers=headers, media_type="application/json")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        detail = exc.detail
        if isinstance(detail, dict):
            return error_response(exc.status_code, detail["code"], detail["message"], headers=exc.headers)
        return error_response(exc.status_code, "http_error", str(detail), headers=exc.headers)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> Response:
        # Nothing was acknowledged: the sender may send the same events again, with the same event ids.
        return error_response(503, "store_unavailable", str(exc), headers={"retry-after": "5"})

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(422, "invalid_request", str(first.get("msg", "invalid request")), path=path)
