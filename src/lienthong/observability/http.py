"""Inbound HTTP requests counted and timed, as pure ASGI middleware.

Labelled by route template (``/v1/messages/{message_id}``, never the id), method and status, so that a
scanner's paths or a caller's ids make no series of their own: a request no route matches is ``unmatched``,
a method outside the usual ones ``other``. A request refused before routing (a body over
``server.max_body_bytes``) is named by the route it was meant for.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``, which runs every request's answer through a task
and a memory stream: here the cost is two clock readings, one dict look-up and two updates of metric
children cached per label set (benchmarks/bench_bus.py's ingest, before and after: README, Metrics).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from time import perf_counter

from prometheus_client import Counter, Histogram
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lienthong.observability.metrics import Metrics

UNMATCHED = "unmatched"
CLIENT_WENT_AWAY = 499
"""The status recorded when the client went away before any answer started (nginx's convention)."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """``lienthong_http_requests_total`` and ``lienthong_http_request_duration_seconds`` for every HTTP
    request through ``app``. ``templates`` gives the application's route templates (its OpenAPI paths), read
    the first time a request refused before routing needs one."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, templates: Callable[[], Iterable[str]]) -> None:
        self.app = app
        self._templates = templates
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None
        self._requests = metrics.http_requests
        self._duration = metrics.http_duration
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception:
            status = status or 500  # what Starlette's outermost error handler answers
            raise
        finally:
            self._observe(scope, status or CLIENT_WENT_AWAY, perf_counter() - started)

    def _observe(self, scope: Scope, status: int, elapsed_s: float) -> None:
        method = scope["method"] if scope["method"] in METHODS else "other"
        key = (self._route(scope), method, status)
        children = self._children.get(key)
        if children is None:  # the label sets are bounded, and so is this cache
            route = key[0]
            children = (
                self._requests.labels(route, method, str(status)),
                self._duration.labels(route, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed_s)

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")  # set by Starlette's router once a route matched
        if route is None:
            return self._match(scope["path"])
        path = getattr(route, "path", None)
        return path if isinstance(path, str) and path else UNMATCHED

    def _match(self, path: str) -> str:
        """The template of the route an unrouted request was meant for, or ``unmatched``."""
        if self._compiled is None:
            self._compiled = [(compile_path(t)[0], t) for t in self._templates()]
        return next((t for regex, t in self._compiled if regex.match(path)), UNMATCHED)
