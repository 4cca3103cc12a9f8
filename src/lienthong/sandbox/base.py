"""The common part of every sandbox peer: a raw ASGI app with fault injection and a record of requests.

Peers are plain ASGI (no framework) so that they stay much faster than the bus they serve: benchmarks must
measure lienthong, not the simulator. Each peer checks what it receives the way the real system would and
keeps a record of what it accepted, which tests and the demo read.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive, Scope, Send

FaultKind = Literal["latency", "error", "throttle", "drop", "malformed"]
FAULT_KINDS: tuple[FaultKind, ...] = ("latency", "error", "throttle", "drop", "malformed")


@dataclass(frozen=True)
class FaultPlan:
    """Which share of requests get a fault, and which faults.

    ``latency`` delays the answer by ``latency_ms``; ``error`` answers 503; ``throttle`` answers 429 with
    ``Retry-After: retry_after_s``; ``drop`` does the work and then closes the connection without a
    complete answer, the case that tests at-least-once delivery; ``malformed`` answers 200 with an HTML
    page, a truncated body or the wrong content type (``Peer.malformed_answer``).
    """

    rate: float = 0.0
    kinds: tuple[FaultKind, ...] = FAULT_KINDS
    latency_ms: int = 200
    retry_after_s: int = 1
    seed: int | None = None


@dataclass(frozen=True)
class Received:
    """One request a peer accepted: the operation, the idempotency key it came with, and its body."""

    operation: str
    key: str | None
    dossier_code: str
    body: dict[str, Any]
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = ()

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Answer:
        return cls(status, orjson.dumps(payload))


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: dict[str, str] = field(default_factory=dict)  # the last value of each parameter


Handler = Callable[[Request], Awaitable[Answer]]


class _DroppedConnection(Exception):
    """Raised after the response started: uvicorn then closes the connection (a drop, to the client)."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _DroppedConnection))


def _quiet_drops() -> None:
    """Keep uvicorn from logging our deliberate drops as application errors (once per process)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


class Peer:
    """Base of every sandbox peer. Subclasses register handlers in ``routes``."""

    def __init__(self, faults: FaultPlan | None = None) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self.requests = 0
        self.faults_injected: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self._scripted: deque[FaultKind] = deque()
        self.set_faults(faults or FaultPlan())
        _quiet_drops()

    def set_faults(self, plan: FaultPlan) -> None:
        self.faults = plan
        self._rng = random.Random(plan.seed)  # noqa: S311 (fault injection, not cryptography)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def record(self, item: Received) -> None:
        with self._lock:
            self._received.append(item)

    def inject(self, *kinds: FaultKind) -> None:
        """Give the next requests these faults, in order, before the random plan applies again."""
        with self._lock:
            self._scripted.extend(kinds)

    def _pick_fault(self) -> FaultKind | None:
        with self._lock:
            if self._scripted:
                return self._scripted.popleft()
        plan = self.faults
        if plan.rate <= 0 or self._rng.random() >= plan.rate:
            return None
        return self._rng.choice(plan.kinds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        request = Request(scope["method"], scope["path"], _headers(scope), await _read_body(receive), query)
        self.requests += 1
        if request.path.startswith("/_sandbox/"):
            await _send(send, await self._admin(request))
            return
        fault = self._pick_fault()
        if fault is not None:
            self.faults_injected[fault] += 1
        if fault == "error":
            await _send(send, self.error_answer())
            return
        if fault == "malformed":
            await _send(send, self.malformed_answer(self._rng))
            return
        if fault == "throttle":
            retry = str(self.faults.retry_after_s).encode()
            await _send(
                send, Answer(429, b'{"message":"too many requests"}', headers=((b"retry-after", retry),))
            )
            return
        if fault == "latency":
            await asyncio.sleep(self.faults.latency_ms / 1000)
        answer = await self._route(request)
        if fault == "drop":
            await send({"type": "http.response.start", "status": answer.status, "headers": _head(answer)})
            raise _DroppedConnection
        await _send(send, answer)

    def error_answer(self) -> Answer:
        """What an ``error`` fault answers; SOAP peers answer a SOAP fault instead."""
        return Answer(503, b"<html><body>503 Service Unavailable</body></html>", b"text/html")

    def malformed_answer(self, rng: random.Random) -> Answer:
        """What a ``malformed`` fault answers with 200: an HTML page (a misconfigured gateway), a JSON
        answer cut short, or a body of the wrong content type. SOAP peers cut XML short instead."""
        choice = rng.choice(("html", "truncated", "content_type"))
        if choice == "truncated":
            return Answer(200, b'{"error_code": 0, "message": "O')
        if choice == "content_type":
            return Answer(200, b"OK", b"text/plain")
        return Answer(200, b"<html><body>Gateway maintenance</body></html>", b"text/html")

    async def _route(self, request: Request) -> Answer:
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return Answer.json(
                {"error_code": "404", "message": f"no route {request.method} {request.path}"}, 404
            )
        return await handler(request)

    async def _admin(self, request: Request) -> Answer:
        if request.path == "/_sandbox/received":
            return Answer.json([r.__dict__ for r in self.received])
        if request.path == "/_sandbox/stats":
            return Answer.json(
                {"requests": self.requests, "received": len(self._received), **self.faults_injected}
            )
        if request.path == "/_sandbox/faults" and request.method == "POST":
            self.set_faults(FaultPlan(**orjson.loads(request.body)))
            return Answer.json({"ok": True})
        return Answer.json({"message": "unknown sandbox admin path"}, 404)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _head(answer: Answer) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", answer.content_type),
        (b"content-length", str(len(answer.body)).encode()),
        *answer.headers,
    ]


async def _send(send: Send, answer: Answer) -> None:
    await send({"type": "http.response.start", "status": answer.status, "headers": _head(answer)})
    await send({"type": "http.response.body", "body": answer.body})
