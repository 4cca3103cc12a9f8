"""What a scrape of a running node's /metrics holds: the process and the runtime, the build, inbound requests
by route template and status, no ``_created`` series, and no stale store gauges while the store is down."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from conftest import AUTH, Running, RunNode
from lienthong import __version__
from lienthong.sandbox.dossiers import generate


def one_event() -> dict[str, object]:
    return dict(generate(1)[0].events[0])


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, keyed by its name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


async def scrape(running: Running) -> str:
    response = await running.client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_the_scrape_has_the_process_and_the_python_runtime(run_node: RunNode) -> None:
    running: Running = await run_node()
    text = await scrape(running)
    names = {name for name, _ in samples(text)}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"} <= names
    assert "python_gc_objects_collected_total" in names
    assert (
        value(
            text,
            "python_info",
            implementation=platform.python_implementation(),
            major=str(sys.version_info.major),
            minor=str(sys.version_info.minor),
            patchlevel=str(sys.version_info.micro),
            version=platform.python_version(),
        )
        == 1.0
    )


async def test_the_scrape_names_the_build(run_node: RunNode) -> None:
    running: Running = await run_node()
    text = await scrape(running)
    assert value(text, "lienthong_build_info", version=__version__, python=platform.python_version()) == 1.0


async def test_the_scrape_has_no_created_series(run_node: RunNode) -> None:
    running: Running = await run_node()
    assert (await running.post(one_event())).status_code == 202
    await running.settle()
    text = await scrape(running)
    assert "lienthong_deliveries_total" in text
    assert [line for line in text.splitlines() if "_created" in line] == []


def test_dropping_created_series_leaves_other_registries_alone() -> None:
    # A Metrics built in the same process must not switch _created off for everybody (a global flag would).
    from lienthong.observability.metrics import Metrics  # noqa: PLC0415

    Metrics(CollectorRegistry()).exposition()
    other = CollectorRegistry()
    Counter("someone_elses", "A counter of another library.", registry=other).inc()
    assert other.get_sample_value("someone_elses_created") is not None


async def test_inbound_requests_are_counted_by_route_template_method_and_status(run_node: RunNode) -> None:
    running: Running = await run_node(server={"max_body_bytes": 64 * 1024})
    assert (await running.post(one_event())).status_code == 202
    assert (await running.client.get("/v1/messages/m-one", headers=AUTH)).status_code == 404
    assert (await running.client.get("/v1/messages/m-two", headers=AUTH)).status_code == 404
    assert (await running.client.get("/v1/messages/m-three")).status_code == 401
    assert (await running.client.get("/wp-login.php")).status_code == 404
    too_large = await running.client.post("/v1/events", content=b"x" * (65 * 1024), headers=AUTH)
    assert too_large.status_code == 413
    text = await scrape(running)

    def count(route: str, method: str, status: str) -> float | None:
        return value(text, "lienthong_http_requests_total", route=route, method=method, status=status)

    assert count("/v1/events", "POST", "202") == 1.0
    assert count("/v1/events", "POST", "413") == 1.0  # refused before routing, still named by its route
    assert count("/v1/messages/{message_id}", "GET", "404") == 2.0  # the template, never the id
    assert count("/v1/messages/{message_id}", "GET", "401") == 1.0
    assert count("unmatched", "GET", "404") == 1.0  # a scanner's paths make no series of their own
    assert "m-one" not in text
    assert "wp-login" not in text
    latency = "lienthong_http_request_duration_seconds_count"
    assert value(text, latency, route="/v1/messages/{message_id}", method="GET") == 3.0
    assert value(text, latency, route="/v1/events", method="POST") == 2.0


async def test_while_the_store_does_not_answer_the_scrape_drops_its_gauges_and_says_so(
    run_node: RunNode, tmp_path: Path
) -> None:
    running: Running = await run_node(store={"path": str(tmp_path / "lienthong.db"), "deadline_s": 0.5})
    assert (await running.post(one_event())).status_code == 202
    await running.settle()
    before = await scrape(running)
    assert value(before, "lienthong_store_up") == 1.0
    assert value(before, "lienthong_outbox_pending", destination="portal") == 0.0
    pid = running.node.store.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the store's process hangs, as on a stuck disk
    try:
        during = await scrape(running)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert value(during, "lienthong_store_up") == 0.0
    for name in ("lienthong_outbox_pending", "lienthong_outbox_oldest_pending_age_seconds"):
        assert not [key for key in samples(during) if key[0] == name], name
    assert not [key for key in samples(during) if key[0] == "lienthong_dead_letters"]
    assert (
        value(
            during,
            "lienthong_deliveries_total",
            destination="portal",
            operation="DongBoHoSoMC",
            outcome="delivered",
        )
        == 1.0
    )  # counters of this process's own work stay
    for _ in range(100):  # the store answers again: the gauges come back
        after = await scrape(running)
        if value(after, "lienthong_store_up") == 1.0:
            break
        await asyncio.sleep(0.05)
    assert value(after, "lienthong_store_up") == 1.0
    assert value(after, "lienthong_outbox_pending", destination="portal") == 0.0


def promtool_or_skip() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool (Debian's prometheus package) is not installed; .ci/run installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI it is required")
        pytest.skip(reason)
    return found


async def test_promtool_accepts_a_real_scrape(run_node: RunNode) -> None:
    running: Running = await run_node()
    assert (await running.post(one_event())).status_code == 202
    await running.settle()
    await running.client.get("/v1/messages/m-nope", headers=AUTH)
    text = await scrape(running)
    checked = subprocess.run(
        [promtool_or_skip(), "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
