"""The API's OpenAPI document and its pages (/docs, /redoc), served by the node with no network.

``api(...)`` builds the FastAPI application with:

- Swagger UI and ReDoc whose scripts, styles and icon come from the node itself (the ``fastapi-offline``
  package ships them; decision 0014): an air-gapped province can read its own API's contract. Swagger UI's
  online validator badge, which would call a public host, is turned off;
- a document whose validation refusals are the ones the node sends: FastAPI adds a 422 of its own shape
  (``HTTPValidationError``) to every operation with parameters, but ``errors.install_error_handlers``
  answers such a refusal as every other, ``{"error": {...}}``;
- the refusals any request may get before its route sees it (``errors.BEFORE_ANY_ROUTE``: a request that is
  not HTTP, a head too large or too slow, a body too large or too many at once) declared on every
  operation, since the node sends them whatever the operation.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from lienthong.api.errors import BEFORE_ANY_ROUTE, RATE_LIMITED, RETRY_AFTER

DOCS_ASSETS = "/docs/assets"
"""Where the pages' scripts, styles and icon are served."""
DESCRIPTION = """\
lienthong takes dossier events from the provincial one-stop system and delivers them to the national
systems, in order per dossier. Send events to `POST /v1/events` with a bearer token; follow each delivery
at `GET /v1/messages/{message_id}`. Every refusal answers `{"error": {"code", "message", "path"?}}`.
"""
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"
_ERROR = "#/components/schemas/Error"


def api(
    *, title: str, version: str, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]
) -> FastAPI:
    """The application, with offline docs and the document as the node answers."""
    app = FastAPIOffline(
        title=title,
        version=version,
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
        swagger_ui_parameters={"validatorUrl": None},
    )

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI caches the document it generates (app.openapi_schema): it is amended once, in place.
        if app.openapi_schema is None:
            _as_answered(generate())
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _as_answered(doc: dict[str, Any]) -> None:
    """FastAPI's own 422s replaced by ours, its validation-error schemas gone with them; the refusals sent
    before any route declared on every operation."""
    ours = {
        "description": "A parameter failed validation (`invalid_request`); `path` names it",
        "content": {"application/json": {"schema": {"$ref": _ERROR}}},
    }
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            answer = operation.get("responses", {}).get("422", {})
            if (
                answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
                == _FASTAPI_422
            ):
                operation["responses"]["422"] = ours
            _before_any_route(operation.setdefault("responses", {}))
            if any("bearer" in scheme for scheme in operation.get("security", [])):
                operation["responses"].setdefault(
                    "429",
                    {
                        "description": RATE_LIMITED,
                        "content": {"application/json": {"schema": {"$ref": _ERROR}}},
                        "headers": RETRY_AFTER,
                    },
                )
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _before_any_route(responses: dict[str, Any]) -> None:
    """Add ``errors.BEFORE_ANY_ROUTE`` to an operation's ``responses``. A status it declares already keeps
    its entry, its description saying the other cause, its schema admitting ``Error`` too."""
    for status, (code, text) in BEFORE_ANY_ROUTE.items():
        declared = responses.get(str(status))
        if declared is None:
            responses[str(status)] = {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": _ERROR}}},
                **({"headers": RETRY_AFTER} if status == HTTPStatus.SERVICE_UNAVAILABLE else {}),
            }
            continue
        if f"`{code}`" not in declared.get("description", ""):
            declared["description"] = f"{declared.get('description', '')}; or: {text[0].lower()}{text[1:]}"
        media = declared.setdefault("content", {}).setdefault("application/json", {})
        schema = media.get("schema")
        if schema is None:
            media["schema"] = {"$ref": _ERROR}
        elif schema.get("$ref") != _ERROR and {"$ref": _ERROR} not in schema.get("anyOf", []):
            media["schema"] = {"anyOf": [schema, {"$ref": _ERROR}]}
