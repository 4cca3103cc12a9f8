"""Request-body limits for every route, as ASGI middleware: one body's size, and all bodies' bytes at once.

Starlette and FastAPI have no body limit of their own; uvicorn has none either. ``BodySizeLimit``:

- refuses a declared ``Content-Length`` over ``max_bytes`` (413) before reading anything, and stops a
  streamed body once it passes it;
- bounds the bytes of the bodies being read and handled at once, all requests together
  (``max_total_bytes``): a body is counted from its first byte (its whole declared length at once) until
  its request is answered, since decoding and validating it costs several times its size. One that does not
  fit gets 503 with ``Retry-After``. Before, 32 concurrent 4 MB bodies took the node to 886 MB;
- treats a client that goes away mid-body (a slow body cut by the server) as nothing to answer, not as a
  server error.
"""

from __future__ import annotations

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_TOTAL_BYTES = 8 * 1024 * 1024
"""Bytes of request bodies in flight, all requests together (8 MiB; config ``server.max_bodies_bytes``)."""
RETRY_AFTER_S = 1


class BodyTooLarge(Exception):
    pass


class BodiesInFlight(Exception):
    """Reading more of this body would pass the bytes allowed in flight."""


class _Budget:
    """The bytes of bodies in flight, shared by every request."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class _Hold:
    """One request's part of the budget, grown as its body arrives and given back once it is answered."""

    def __init__(self, budget: _Budget) -> None:
        self._budget = budget
        self.size = 0

    def grow_to(self, size: int) -> bool:
        """Hold ``size`` bytes in all; False (holding no more) when the budget has not that many left."""
        more = size - self.size
        if more <= 0:
            return True
        if self._budget.used + more > self._budget.limit:
            return False
        self._budget.used += more
        self.size = size
        return True

    def release(self) -> None:
        self._budget.used -= self.size
        self.size = 0


class BodySizeLimit:
    """``max_bytes`` per body (413 past it); ``max_total_bytes`` (default 8 MiB, at least ``max_bytes``)
    for all bodies in flight (503 with Retry-After past it)."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.budget = _Budget(max(max_total_bytes, max_bytes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(send)
            return
        hold = _Hold(self.budget)
        try:
            if hold.grow_to(declared or 0):
                await self._serve(scope, receive, send, hold)
            else:
                await self._busy(send)
        finally:
            hold.release()

    async def _serve(self, scope: Scope, receive: Receive, send: Send, hold: _Hold) -> None:
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
                if not hold.grow_to(received):
                    raise BodiesInFlight
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._too_large(send)
        except BodiesInFlight:
            if not started:
                await self._busy(send)
        except ClientDisconnect:
            pass  # the client left (or was cut off) mid-body: there is no one to answer

    async def _too_large(self, send: Send) -> None:
        message = f"the request body is larger than the limit of {self.max_bytes} bytes; send smaller batches"
        await _refuse(send, 413, "body_too_large", message)

    async def _busy(self, send: Send) -> None:
        message = (
            f"the server is reading as many request bodies as it may at once ({self.budget.limit:,} bytes);"
            f" send again in {RETRY_AFTER_S} s"
        )
        await _refuse(send, 503, "server_busy", message, retry_after_s=RETRY_AFTER_S)


async def _refuse(
    send: Send, status: int, code: str, message: str, *, retry_after_s: int | None = None
) -> None:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after_s is not None:
        headers.append((b"retry-after", str(retry_after_s).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
