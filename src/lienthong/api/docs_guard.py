"""``/docs``, ``/redoc`` and ``/openapi.json`` for operators only (issue 13 §5), as ``server.docs`` says:
``admin`` (the default) asks for an operator's credential, an admin bearer token (``admin.tokens``) or the
console's session; ``public`` serves them to anyone; ``off`` to no one. The document tells a stranger every
route and refusal of the node: a map worth keeping for those who run it.

Pure ASGI, in front of FastAPI's own routes for them: a browser without a session is sent to the console's
login, a program gets 401 in the API's error shape.
"""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Literal

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

DocsMode = Literal["admin", "public", "off"]
GUARDED = frozenset({"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})


class DocsGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        mode: DocsMode,
        operator: Callable[[str | None, str | None], str | None],
        cookie: str,
    ) -> None:
        """``operator(bearer token, session cookie)``: the operator they name, or None."""
        self.app = app
        self._mode = mode
        self._operator = operator
        self._cookie = cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._mode == "public" or scope["path"] not in GUARDED:
            await self.app(scope, receive, send)
            return
        if self._mode == "admin" and self._operator(*self._credentials(scope)) is not None:
            await self.app(scope, receive, send)
            return
        if self._mode == "off":
            await _answer(send, 404, "not_found", "the API's documentation is off here (server.docs)")
        elif scope["path"] == "/openapi.json":
            await _answer(
                send,
                401,
                "unauthorized",
                "the API's document is for operators: send an admin token (admin.tokens)",
            )
        else:
            await send(
                {"type": "http.response.start", "status": 303, "headers": [(b"location", b"/admin/login")]}
            )
            await send({"type": "http.response.body", "body": b""})

    def _credentials(self, scope: Scope) -> tuple[str | None, str | None]:
        token = cookie = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, rest = value.decode("latin-1").partition(" ")
                token = rest.strip() if scheme.lower() == "bearer" else None
            elif name == b"cookie":
                jar: SimpleCookie = SimpleCookie()
                try:
                    jar.load(value.decode("latin-1"))
                except ValueError:
                    continue
                if self._cookie in jar:
                    cookie = jar[self._cookie].value
        return token, cookie


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
