"""`/readyz` reflects the store, the certificates the node presents and the scheduler (issue 14 §5);
`/healthz` stays up for them (a restart would not fix an expired certificate)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from conftest import Peers, config_dict
from lienthong.app import Lienthong, build
from lienthong.config import Config
from lienthong.serving import HttpServer
from test_outbound_auth import pki  # noqa: F401 (the fixture)


@asynccontextmanager
async def node_at(config: dict[str, Any], clock: Callable[[], float]) -> AsyncIterator[tuple[Lienthong, str]]:
    node = build(Config.model_validate(config), registry=CollectorRegistry(), clock=clock)
    server = HttpServer(node.api, lifespan="on")
    await server.start()
    try:
        yield node, server.url
    finally:
        await server.stop()


async def until_ready(url: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        for _ in range(200):
            answer = await client.get("/readyz")
            if answer.status_code == 200:
                return answer
            await asyncio.sleep(0.02)
    raise AssertionError(f"never ready: {answer.text}")


async def test_a_client_certificate_that_expires_while_running_makes_the_node_not_ready(
    tmp_path: Path,
    peers: Peers,
    pki: dict[str, Path],  # noqa: F811
) -> None:
    config = config_dict(tmp_path, peers)
    config["destinations"]["emc"]["tls"] = {
        "client_cert": str(pki["client"]),
        "client_key": str(pki["client_key"]),
    }
    now = [time.time()]
    async with node_at(config, lambda: now[0]) as (_, url):
        await until_ready(url)
        now[0] = 32_503_680_001.0  # just past 3000-01-01, when trustme's certificates run out
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["error"]["code"] == "certificate_expired"
            assert "emc's client certificate" in ready.json()["error"]["message"]
            assert (await client.get("/healthz")).status_code == 200


async def test_a_scheduler_that_stopped_makes_the_node_not_ready(tmp_path: Path, peers: Peers) -> None:
    config = config_dict(tmp_path, peers)
    config["scheduler"] = {"enabled": True, "jobs": {"kpis": {"cron": "0 2 * * *"}}}
    async with node_at(config, time.time) as (node, url):
        await until_ready(url)
        assert node.scheduler is not None
        await node.scheduler.stop()  # as if its loop had died
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["error"]["code"] == "scheduler_stopped"


async def test_each_certificate_file_s_expiry_is_a_gauge_by_name_and_purpose(
    tmp_path: Path,
    peers: Peers,
    pki: dict[str, Path],  # noqa: F811
) -> None:
    config = config_dict(tmp_path, peers)
    config["destinations"]["emc"]["tls"] = {
        "ca_file": str(pki["ca"]),
        "client_cert": str(pki["client"]),
        "client_key": str(pki["client_key"]),
    }
    async with node_at(config, time.time) as (_, url), httpx.AsyncClient(base_url=url, timeout=5) as client:
        text = (await client.get("/metrics")).text
    for purpose in ("client", "ca"):
        line = (
            f'lienthong_certificate_expiry_timestamp_seconds{{name="emc",purpose="{purpose}"}} 3.250368e+10'
        )
        assert line in text, purpose
