"""KPIs by unit in the console and the admin API (issue 14 §4): the latest successful ``kpis`` run's rates
against the directives' targets, units below a target first; and why there are none when there are none."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import RunNode
from test_console import logged_in
from test_dlq_support import ADMIN, still_node

JOBS = {"jobs": {"kpis": {"cron": "0 2 * * *"}}}


def dossier(code: str, unit: str, channel: str, level: int) -> dict[str, object]:
    received = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    return {
        "event_id": f"evt-{code}",
        "type": "dossier.received",
        "occurred_at": received,
        "unit_code": unit,
        "dossier": {"code": code, "channel": channel, "level": level, "received_at": received},
    }


async def test_the_console_shows_every_unit_s_rates_against_its_targets(
    run_node: RunNode, tmp_path: Path
) -> None:
    running = await still_node(
        run_node, scheduler=JOBS, bank_statements={"reports_dir": str(tmp_path / "reports")}
    )
    async with logged_in(running) as (client, _):
        before = (await client.get("/admin")).text
        assert "KPIs by unit" in before
        assert "no KPI run has succeeded yet" in before
        answer = await running.client.get("/admin/v1/kpis", headers=ADMIN)
        assert answer.json()["missing"].startswith("no KPI run has succeeded yet")

        for event in (
            dossier("A-1", "UNIT-LOW", "in_person", 2),
            dossier("A-2", "UNIT-LOW", "in_person", 2),
            dossier("A-3", "UNIT-LOW", "online", 4),
            dossier("B-1", "UNIT-OK", "online", 4),
        ):
            assert (await running.post(event)).status_code == 202
        scheduler = running.node.scheduler
        assert scheduler is not None
        run = await scheduler.run_by_hand(scheduler.window_for("kpis"))
        assert run.outcome == "succeeded", run.detail

        page = (await client.get("/admin")).text
        section = page[page.index("KPIs by unit") :]
        assert run.run_id in section
        # UNIT-LOW is one in three online (33.3% < 60%): listed first, below its target; UNIT-OK is not.
        assert section.index("UNIT-LOW") < section.index("UNIT-OK")
        low_row = re.search(r"<tr><td>UNIT-LOW</td>(.*?)</tr>", section)
        assert low_row is not None
        assert '<span class="below">33.3% <small>/ 60%</small> below</span>' in low_row.group(1)
        ok_row = re.search(r"<tr><td>UNIT-OK</td>(.*?)</tr>", section)
        assert ok_row is not None
        assert "100.0% <small>/ 60%</small>" in ok_row.group(1)
        assert "below" not in ok_row.group(1).split("</td>")[0]

        table = (await running.client.get("/admin/v1/kpis", headers=ADMIN)).json()
        assert table["run_id"] == run.run_id
        assert table["missing"] is None
        rows = {(r["unit"], r["kpi"]): r for r in table["rows"]}
        assert rows["UNIT-LOW", "online"] == {
            "unit": "UNIT-LOW",
            "kpi": "online",
            "rate": 1 / 3,
            "target": 0.6,
            "below": True,
        }

        for report in run.reports:  # the report kept on another node's disk, as far as this one knows
            Path(report).unlink()
        gone = (await client.get("/admin")).text
        assert f"the run {run.run_id} ran on node" in gone
        assert (await running.client.get("/admin/v1/kpis", headers=ADMIN)).json()["rows"] == []


async def test_kpis_are_for_operators_only(run_node: RunNode) -> None:
    running = await still_node(run_node)
    assert (await running.client.get("/admin/v1/kpis")).status_code == 401
