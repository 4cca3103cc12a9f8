"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import PlainTextResponse, Response

from lienthong.api.errors import answer, error_response, refusals
from lienthong.api.schemas import Health
from lienthong.clock import Clock, now_ms
from lienthong.errors import StoreError
from lienthong.observability.metrics import Metrics
from lienthong.store import Store, units

_HEALTHZ = {
    200: answer(Health, {"status": "ok"}, "Up, and its store can be reached"),
    **refusals({503: "The store cannot be reached and cannot be started again (`store_lost`)"}),
}
_READYZ = {
    200: answer(
        Health,
        {"status": "ready"},
        "The store answers, the dispatcher and the scheduler run, no certificate has expired",
    ),
    **refusals(
        {
            503: "The store does not answer (`store_unavailable`), the dispatcher or the scheduler is stopped"
            " (`dispatcher_stopped`, `scheduler_stopped`), or a client certificate has expired"
            " (`certificate_expired`)"
        }
    ),
}
SCRAPE_STORE_WAIT_S = 5.0
"""How long a scrape waits for the store's outbox reading: under Prometheus's default 10 s scrape timeout,
so that a hung store shows as ``lienthong_store_up 0`` rather than as the node down."""
_METRICS: dict[int | str, dict[str, object]] = {
    200: {
        "description": "Prometheus text exposition",
        "content": {
            "text/plain": {
                "schema": {"type": "string"},
                "example": 'lienthong_outbox_pending{destination="portal"} 0.0\n',
            }
        },
    },
    403: {
        "description": "The caller's address is not in `server.metrics_from` (`forbidden`)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    },
}


def health_router(
    *,
    store: Store,
    metrics: Metrics,
    destinations: Sequence[str],
    dispatcher_running: Callable[[], bool],
    clock: Clock,
    scheduler_running: Callable[[], bool] = lambda: True,
    certificates: Sequence[tuple[str, float]] = (),
    metrics_from: Sequence[IPv4Network | IPv6Network] = (),
) -> APIRouter:
    """``certificates``: (what, when it expires in seconds since the epoch) of each certificate the node
    presents; an expired one makes the node not ready (its peer would refuse every handshake).
    ``metrics_from``: the networks that may read ``/metrics`` (none given: any)."""
    router = APIRouter()

    @router.get("/healthz", responses=_HEALTHZ)
    async def healthz() -> Response:
        """The process is up and serving, and its store can be reached (or brought back): when the store's
        process cannot be started again, this fails so that a supervisor restarts the node."""
        if not store.healthy:
            return error_response(503, "store_lost", "the store cannot be reached; restart the node")
        return Response(b'{"status":"ok"}', media_type="application/json")

    @router.get("/readyz", responses=_READYZ)
    async def readyz() -> Response:
        """Ready when the store answers, the dispatcher and the scheduler (if enabled) run, and no
        certificate the node presents has expired."""
        try:
            await store.run(units.stats)
        except StoreError as exc:
            return error_response(503, "store_unavailable", str(exc))
        if not dispatcher_running():
            return error_response(503, "dispatcher_stopped", "the dispatcher is not running")
        if not scheduler_running():
            return error_response(503, "scheduler_stopped", "the scheduler is enabled and not running")
        now = clock()
        expired = [what for what, until in certificates if until <= now]
        if expired:
            return error_response(503, "certificate_expired", f"expired: {'; '.join(expired)}")
        return Response(b'{"status":"ready"}', media_type="application/json")

    @router.get("/metrics", responses=_METRICS, response_class=PlainTextResponse)
    async def prometheus(request: Request) -> Response:
        """Prometheus exposition; outbox gauges are read fresh from the store. When it does not answer
        within SCRAPE_STORE_WAIT_S, ``lienthong_store_up`` is 0 and those gauges are left out, not stale."""
        if metrics_from and not _from(request, metrics_from):
            client = request.client.host if request.client else "an unknown address"
            return error_response(403, "forbidden", f"{client} may not read /metrics (server.metrics_from)")
        try:
            stats = await asyncio.wait_for(store.run(units.stats), SCRAPE_STORE_WAIT_S)
        except (StoreError, TimeoutError):
            metrics.observe_store_unavailable()
        else:
            metrics.observe_outbox(stats, destinations, now_ms(clock))
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


def _from(request: Request, networks: Sequence[IPv4Network | IPv6Network]) -> bool:
    """Whether the request's peer address is in one of ``networks``."""
    try:
        address = ip_address(request.client.host if request.client else "")
    except ValueError:
        return False
    return any(address in network for network in networks)
