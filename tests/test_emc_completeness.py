"""The emc-completeness job: a step EMC never got because it was down too long is pushed again through the
outbox; one EMC refused is left for a person, named in the report."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from conftest import QUICK_CIRCUIT
from lienthong.app import build
from lienthong.bus.envelope import parse_body
from lienthong.config import Config
from lienthong.sandbox import FaultPlan
from lienthong.sandbox.dossiers import generate
from lienthong.sandbox.emc import EmcSandbox
from lienthong.serving import ThreadedServer
from lienthong.store import units


@pytest.fixture
def two_emcs() -> Iterator[tuple[EmcSandbox, str, EmcSandbox, str]]:
    flaky = EmcSandbox(faults=FaultPlan(rate=1.0, kinds=("error",)))
    strict = EmcSandbox(bearer_token="the-right-token")
    with ThreadedServer(lambda: flaky) as a, ThreadedServer(lambda: strict) as b:
        yield flaky, a.url, strict, b.url


async def test_steps_emc_missed_are_pushed_again_and_refused_ones_reported(
    tmp_path: Path, two_emcs: tuple[EmcSandbox, str, EmcSandbox, str]
) -> None:
    flaky, flaky_url, _, strict_url = two_emcs
    emc = {"kind": "emc", "site_id": "SANDBOX-SITE", "province_code": "H56", "timeout_s": 2}
    now = [time.time()]
    config = Config.model_validate(
        {
            "store": {"path": str(tmp_path / "store.db")},
            "dispatcher": {"poll_interval_s": 0.02, "retry": {"max_attempts": 1}, "circuit": QUICK_CIRCUIT},
            "destinations": {
                "emc-a": {**emc, "base_url": flaky_url},
                "emc-b": {**emc, "base_url": strict_url, "bearer_token": "a-wrong-token"},
            },
            "routes": [
                {
                    "on": "dossier.received",
                    "deliver": [
                        {"to": "emc-a", "operation": "TrackingMCDT"},
                        {"to": "emc-b", "operation": "TrackingMCDT"},
                    ],
                }
            ],
            "scheduler": {"jobs": {"emc-completeness": {"cron": "0 2 * * *"}}},
            "bank_statements": {"reports_dir": str(tmp_path / "reports")},
        }
    )
    node = build(config, registry=CollectorRegistry(), clock=lambda: now[0])
    await node.start()
    try:
        event = generate(1, seed=5)[0].events[0]
        parsed, _ = parse_body(json.dumps(event).encode(), dossier_code_field="code", max_events=1)
        await node.ingestor.accept(parsed)
        for _ in range(500):
            stats = {s.destination: s for s in await node.store.run(units.stats)}
            if all(stats.get(d) is not None and stats[d].dead == 1 for d in ("emc-a", "emc-b")):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"both deliveries should be dead letters: {stats}")

        flaky.set_faults(FaultPlan())  # EMC is back
        accepted_at = datetime.fromtimestamp(now[0], UTC)
        now[0] += 2 * 86_400  # the window the event fell in is over
        scheduler = node.scheduler
        assert scheduler is not None
        record = await scheduler.run_by_hand(scheduler.window_for("emc-completeness", accepted_at))
        assert record.outcome == "succeeded", record.detail
        assert (record.counts["pushed_again"], record.counts["refused_by_emc"]) == (1, 1)
        report = json.loads(Path(record.reports[0]).read_text())
        (refused,) = [f for f in report["findings"] if f["kind"] == "refused_by_emc"]
        assert "http 401" in refused["detail"]
        for _ in range(500):
            if len(flaky.received) == 1:
                break
            await asyncio.sleep(0.02)
        assert len(flaky.received) == 1  # pushed again through the outbox, delivered once
        dead = {s.destination: s.dead for s in await node.store.run(units.stats)}
        assert (dead.get("emc-a", 0), dead["emc-b"]) == (0, 1)
    finally:
        await node.stop()
