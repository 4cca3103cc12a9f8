"""A real Prometheus (Debian's ``prometheus`` binary, on loopback) scrapes a running node with the alert rules
of deploy/prometheus loaded: delivery, backlog and dead-letter series arrive with the values the node's work
gives them, and the rule that should fire does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import Peers, Running, RunNode
from lienthong.sandbox.base import FaultPlan
from lienthong.sandbox.dossiers import generate
from processes import free_port

pytestmark = pytest.mark.slow

RULES = Path(__file__).parent.parent / "deploy" / "prometheus" / "alerts.yml"


def prometheus_or_skip() -> str:
    found = shutil.which("prometheus")
    if found is None:
        reason = "prometheus (Debian's prometheus package) is not installed; .ci/run installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI the real-Prometheus test is required")
        pytest.skip(reason)
    return found


class Prometheus:
    """A Prometheus server scraping ``target`` every second, evaluating the rules every second."""

    def __init__(self, workdir: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "lienthong", "static_configs": [{"targets": [target]}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                prometheus_or_skip(),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def prometheus_dir(tmp_path: Path) -> Path:
    prometheus_or_skip()
    path = tmp_path / "prometheus"
    path.mkdir()
    return path


async def query(client: httpx.AsyncClient, expr: str) -> dict[frozenset[tuple[str, str]], float]:
    """An instant query's vector, keyed by each series' labels (without job and instance)."""
    answer = (await client.get("/api/v1/query", params={"query": expr})).json()
    assert answer["status"] == "success", answer
    return {
        frozenset((k, v) for k, v in r["metric"].items() if k not in ("job", "instance")): float(
            r["value"][1]
        )
        for r in answer["data"]["result"]
    }


async def ready(client: httpx.AsyncClient, timeout_s: float = 20.0) -> None:
    """Wait for Prometheus to serve queries (it answers 503 while it starts)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/-/ready")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"Prometheus was not ready within {timeout_s} s")


async def until(client: httpx.AsyncClient, expr: str, want: Any, timeout_s: float = 20.0) -> None:
    """Poll ``expr`` until its vector (labels → value) equals ``want``."""
    deadline = time.monotonic() + timeout_s
    got: object = None
    while time.monotonic() < deadline:
        got = await query(client, expr)
        if got == want:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{expr}: {got!r} after {timeout_s} s, wanted {want!r}")


def series(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


@pytest.fixture
def prometheus_for(prometheus_dir: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        started.append(Prometheus(prometheus_dir, target))
        return started[-1]

    yield start
    for server in started:
        server.stop()


async def test_prometheus_scrapes_deliveries_backlog_and_dead_letters_and_fires_the_dead_letter_rule(
    run_node: RunNode, peers: Peers, prometheus_for: Any
) -> None:
    running: Running = await run_node()
    prometheus: Prometheus = prometheus_for(str(running.client.base_url.netloc.decode()))
    async with httpx.AsyncClient(base_url=prometheus.url, timeout=5) as client:
        # Given Prometheus has seen the node with nothing dead yet
        await ready(client)
        await until(client, 'up{job="lienthong"}', {series(__name__="up"): 1.0})
        await until(
            client,
            "lienthong_dead_letters",
            {
                series(__name__="lienthong_dead_letters", destination="portal"): 0.0,
                series(__name__="lienthong_dead_letters", destination="emc"): 0.0,
            },
        )
        # When the portal answers 503 to every attempt: one event's portal delivery runs out of its 4 attempts
        peers.portal.set_faults(FaultPlan(rate=1.0, kinds=("error",)))
        assert (await running.post(dict(generate(1)[0].events[0]))).status_code == 202
        await running.settle()

        # Then the delivery, backlog and dead-letter series say so
        await until(
            client,
            "sum by (destination, outcome) (lienthong_deliveries_total)",
            {
                series(destination="emc", outcome="delivered"): 1.0,
                series(destination="portal", outcome="retry"): 3.0,
                series(destination="portal", outcome="dead"): 1.0,
            },
        )
        await until(
            client,
            "max by (destination) (lienthong_outbox_pending)",
            {series(destination="portal"): 0.0, series(destination="emc"): 0.0},
        )
        await until(
            client, "max by (destination) (lienthong_dead_letters) > 0", {series(destination="portal"): 1.0}
        )
        # and the rule on new dead letters fires, for the portal only, while the node's store stays up
        await until(
            client,
            'ALERTS{alertstate="firing"}',
            {
                series(
                    __name__="ALERTS",
                    alertname="LienthongDeadLettersGrowing",
                    alertstate="firing",
                    destination="portal",
                    severity="warning",
                ): 1.0
            },
        )
        assert await query(client, "lienthong_store_up") == {series(__name__="lienthong_store_up"): 1.0}
