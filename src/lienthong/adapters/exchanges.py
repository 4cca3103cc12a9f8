"""The bytes of one delivery attempt's last exchange with a peer, as SHA-256 hashes, for the message log.

The dispatcher opens an ``Exchange`` around each attempt (``recording``); the HTTP transports note each
request's body and answer's body (``note``) in whatever exchange is open in their task's context, REST
through ``Endpoint`` and SOAP through the httpx transport zeep uses. An attempt that makes several
exchanges (a token, then the call) keeps the last: the call. Outside an attempt (a prefill look-up, a
probe at start) nothing is open and nothing is noted.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Exchange:
    request_sha256: str = ""
    response_sha256: str = ""


_OPEN: ContextVar[Exchange | None] = ContextVar("lienthong_exchange", default=None)


@contextlib.contextmanager
def recording() -> Iterator[Exchange]:
    """An exchange open for the code run in this context until the block ends."""
    exchange = Exchange()
    token = _OPEN.set(exchange)
    try:
        yield exchange
    finally:
        _OPEN.reset(token)


def open_exchange() -> Exchange | None:
    return _OPEN.get()


def note(request: bytes, response: bytes) -> None:
    """Hash one request and its answer into the exchange open here, if any."""
    exchange = _OPEN.get()
    if exchange is not None:
        exchange.request_sha256 = hashlib.sha256(request).hexdigest()
        exchange.response_sha256 = hashlib.sha256(response).hexdigest()
