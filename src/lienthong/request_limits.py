"""Limits on a request's head and on how slowly it may arrive, enforced in uvicorn's httptools protocol.

They cannot be ASGI middleware: by the time an app sees a request its head has been read whole, and httptools
has no limit of its own (uvicorn's ``h11_max_incomplete_event_size`` applies to h11 only). Measured before:
four requests with one 100 MB header each were answered after about 60 s and grew the node by 400 MB, and
1,200 half-sent requests were held open for 70 s.

- The head (request line and headers) may hold ``max_header_bytes`` and ``max_headers`` lines: past either,
  431 and the connection is closed. A head still arriving is counted as it arrives, so a header that never
  ends is cut at the limit (plus one read of the socket), not buffered to its end.
- A head must arrive within ``header_timeout_s`` of the connection's opening or of its first byte: 408.
- A body must arrive within ``body_timeout_s`` of the end of its head: the connection is closed, and the app,
  if it is reading, sees ``http.disconnect``.
- A request httptools cannot parse (``Content-Length: abc``, a space in a header's name) gets 400
  ``malformed_request``, where uvicorn would answer ``text/plain``.

Every one of these answers carries the API's error body, ``{"error": {"code", "message"}}``, and the OpenAPI
document declares them on every operation (``api.openapi``).
"""

from __future__ import annotations

import asyncio
import http
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LINGER_S = 1.0
LINGER_BYTES = 64 * 1024
"""After a refusal, request bytes still arriving are drained for up to LINGER_S seconds and LINGER_BYTES
bytes, so that the client can read the answer rather than a reset; then the connection is closed."""


@dataclass(frozen=True)
class RequestLimits:
    """What one request may take from the server before its app sees it (the defaults of ``server``)."""

    max_header_bytes: int = 16 * 1024
    """Request line and headers together, in bytes (16 KiB); past it: 431."""
    max_headers: int = 100
    """Header lines (100); past it: 431."""
    header_timeout_s: float = 10.0
    """From the connection's opening, or a request's first byte, to the end of its head (10 s): 408."""
    body_timeout_s: float = 60.0
    """From the end of the head to the end of the body (60 s): the connection is closed."""


def limited_protocol(limits: RequestLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol class, enforcing ``limits`` (for ``uvicorn.Config(http=...)``)."""
    return type("LimitedHttpToolsProtocol", (_LimitedHttpTools,), {"limits": limits})


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; the protocol answers ``status`` instead."""


class _LimitedHttpTools(HttpToolsProtocol):
    limits: ClassVar[RequestLimits] = RequestLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._arrived = 0  # bytes received since the head began (coarse: whole reads)
        self._head_size = 0  # bytes of the head parsed so far (exact)
        self._header_count = 0
        self._refusal: tuple[int, str, str] | None = None
        self._discarding = False
        self._discarded = 0
        self._timer: asyncio.TimerHandle | None = None

    # -- the connection ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_timer(self.limits.header_timeout_s, self._head_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            self._discard(len(data))
            return
        if self._in_head:
            self._arrived += len(data)
        super().data_received(data)
        if self._in_head and self._arrived > self.limits.max_header_bytes and not self._discarding:
            self._refuse(*self._head_too_large())

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to any parser error, including the one our callbacks raise to stop parsing: ours,
        # with the API's error body rather than uvicorn's text/plain.
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            self._refuse(400, "malformed_request", _malformed(msg))

    # -- parser callbacks ------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_size, self._header_count = True, 0, 0
        if self._timer is None:
            self._start_timer(self.limits.header_timeout_s, self._head_too_slow)

    def on_url(self, url: bytes) -> None:
        self._grow_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._stop_parsing(
                431, "headers_too_large", f"a request may carry at most {self.limits.max_headers} headers"
            )
        self._grow_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head, self._arrived = False, 0
        self._start_timer(self.limits.body_timeout_s, self._body_too_slow)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head, self._arrived = True, 0
        self._stop_timer()
        super().on_message_complete()

    # -- refusals --------------------------------------------------------------------------------------------

    def _grow_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.limits.max_header_bytes:
            self._stop_parsing(*self._head_too_large())

    def _head_too_large(self) -> tuple[int, str, str]:
        limit = self.limits.max_header_bytes
        return 431, "headers_too_large", f"the request line and headers may hold at most {limit:,} bytes"

    def _stop_parsing(self, status: int, code: str, message: str) -> None:
        self._refusal = (status, code, message)
        raise _Refused(message)

    def _head_too_slow(self) -> None:
        self._timer = None
        limit = self.limits.header_timeout_s
        message = f"the request's head did not arrive within {limit:g} s"
        idle = self.cycle is None or self.cycle.response_complete
        if idle:
            self._refuse(408, "request_timeout", message)
        else:  # a previous request's answer is still being written: nothing may be interleaved
            self.transport.close()

    def _body_too_slow(self) -> None:
        self._timer = None
        self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` with our error body, then drain what the client still sends, briefly."""
        self._stop_timer()
        if self.transport.is_closing():
            return
        self.transport.write(_error_answer(status, code, message))
        self._discarding = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._start_timer(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def _discard(self, size: int) -> None:
        self._discarded += size
        if self._discarded > LINGER_BYTES:
            self.transport.close()

    # -- the one timer -------------------------------------------------------------------------------------

    def _start_timer(self, delay_s: float, callback: Callable[[], None]) -> None:
        self._stop_timer()
        self._timer = self.loop.call_later(delay_s, callback)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _malformed(msg: str) -> str:
    """uvicorn's reason for a 400, as the API words its messages."""
    if msg.startswith("Invalid HTTP request"):  # httptools' parser error, whatever it was
        return "the request is not valid HTTP/1.1"
    return msg.rstrip(".").lower()


def _error_answer(status: int, code: str, message: str) -> bytes:
    """A whole HTTP answer with the API's error body, closing the connection."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    head = (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body
