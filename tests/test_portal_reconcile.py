"""The portal-reconcile job against the sandbox portal: a dossier the portal lost and one whose status
drifted are pushed again through the outbox and delivered; a dossier in step is left alone."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from conftest import Peers, config_dict
from lienthong.app import build
from lienthong.bus.envelope import parse_body
from lienthong.config import Config
from lienthong.sandbox.dossiers import generate
from lienthong.store import units


async def test_lost_and_drifted_dossiers_are_pushed_again_and_delivered(tmp_path: Path, peers: Peers) -> None:
    data = config_dict(tmp_path, peers)
    data["scheduler"] = {"jobs": {"portal-reconcile": {"cron": "0 0 1 1 *"}}}  # a year a window
    data["bank_statements"] = {"reports_dir": str(tmp_path / "reports")}
    now = [time.time()]
    node = build(Config.model_validate(data), registry=CollectorRegistry(), clock=lambda: now[0])
    await node.start()
    try:
        received = [stream.events[0] for stream in generate(3, seed=11)]
        parsed, _ = parse_body(
            json.dumps({"events": received}).encode(), dossier_code_field="code", max_events=10
        )
        await node.ingestor.accept(parsed)
        codes = [e["dossier"]["code"] for e in received]
        for _ in range(500):
            if all(code in peers.portal.dossiers for code in codes):
                break
            await asyncio.sleep(0.02)
        else:
            letters = await node.store.run(units.dead_letters, None, 10)
            raise AssertionError(f"not delivered: {[(m.destination, m.last_error) for m in letters]}")
        lost, drifted, kept = codes
        del peers.portal.dossiers[lost]  # the portal lost it
        peers.portal.dossiers[drifted] = {**peers.portal.dossiers[drifted], "TrangThaiHoSo": "4"}
        sent_before = len(peers.portal.received)

        occurred = datetime.fromisoformat(received[0]["occurred_at"]).astimezone(UTC)
        now[0] = datetime(occurred.year + 2, 1, 2, tzinfo=UTC).timestamp()  # the window is over
        scheduler = node.scheduler
        assert scheduler is not None
        window = scheduler.window_for("portal-reconcile", occurred)
        record = await scheduler.run_by_hand(window)
        assert record.outcome == "succeeded", record.detail
        assert (
            record.counts["dossiers"],
            record.counts["missing_on_portal"],
            record.counts["status_drift"],
        ) == (3, 1, 1)
        assert record.counts["pushed_again"] == 2
        for _ in range(500):
            if lost in peers.portal.dossiers and peers.portal.dossiers[drifted]["TrangThaiHoSo"] == "1":
                break
            await asyncio.sleep(0.02)
        assert peers.portal.dossiers[lost]["MaHoSo"] == lost  # delivered again, through the outbox
        assert peers.portal.dossiers[drifted]["TrangThaiHoSo"] == "1"  # received, as its last event says
        assert len(peers.portal.received) > sent_before
        assert kept in peers.portal.dossiers

        again = await scheduler.run_by_hand(window, forced_by="test", forced_reason="in step now")
        assert again.outcome == "succeeded"
        assert again.counts.get("pushed_again", 0) == 0
        csv_text = Path(record.reports[0]).read_text()
        assert f"missing_on_portal,{lost}" in csv_text
        stats = await node.store.run(units.stats)
        assert sum(s.dead for s in stats) == 0
    finally:
        await node.stop()
