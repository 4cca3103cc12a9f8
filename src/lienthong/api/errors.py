"""One error body for every refusal: ``{"error": {"code", "message", "path"?}}``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from lienthong.errors import StoreError


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
