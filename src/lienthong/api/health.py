"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from lienthong.api.errors import error_response
from lienthong.bus.outbox import Outbox
from lienthong.errors import StoreError
from lienthong.observability.metrics import Metrics


def health_router(
    *, outbox: Outbox, metrics: Metrics, destinations: Sequence[str], dispatcher_running: Callable[[], bool]
) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up and serving."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {}})
    async def readyz() -> Response:
        """Ready when the store answers and the dispatcher runs."""
        try:
            await outbox.stats()
        except StoreError as exc:
            return error_response(503, "store_unavailable", str(exc))
        if not dispatcher_running():
            return error_response(503, "dispatcher_stopped", "the dispatcher is not running")
        return Response(b'{"status":"ready"}', media_type="application/json")

    @router.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus exposition; outbox gauges are read fresh from the store."""
        with contextlib.suppress(StoreError):  # serve what we have; readyz reports the store
            metrics.observe_outbox(await outbox.stats(), destinations, outbox.now_ms())
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
