"""Every time the command line prints is ISO 8601 with an offset, in Vietnam's time (decision 0015):
dead letters, payment callbacks and findings, runs, a run by hand, and log lines."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import Peers, RunNode, config_dict
from lienthong.cli import main
from lienthong.payments.records import CallbackRecord, PaymentFinding
from lienthong.sandbox.dossiers import generate
from lienthong.store import units
from lienthong.store.contract import Tx

ISO_WITH_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{3})?)?\+07:00")
"""The one format: to the second (milliseconds in log lines); run ids name a window to the minute."""
TIME_LIKE = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2}|\s?UTC)?"
)
"""Anything that looks like a time, in whatever format, so that none in another format slips by."""
AT_MS = 1_800_000_000_000  # 2027-01-15T08:00:00Z
AT_TEXT = "2027-01-15T15:00:00+07:00"
JOBS = {"jobs": {"integrity-check": {"cron": "0 2 * * *"}}}


def times(text: str) -> list[str]:
    """Every time in ``text``; fails on one that is not ISO 8601 with +07:00."""
    found = [m.group(0) for m in TIME_LIKE.finditer(text)]
    wrong = [t for t in found if not ISO_WITH_OFFSET.fullmatch(t)]
    assert wrong == [], f"times not in the one format: {wrong}"
    return found


def add_finding(tx: Tx, finding: PaymentFinding) -> None:
    """A unit of work (module level: the store's process imports it by name)."""
    tx.payments.add_finding(finding)


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``lienthong ARGS`` (exit 0), on its own loop as from an operator's shell; its stdout and stderr."""
    capsys.readouterr()
    assert await asyncio.to_thread(main, list(args)) == 0
    captured = capsys.readouterr()
    return captured.out + captured.err


@pytest.fixture
async def config(tmp_path: Path, peers: Peers, run_node: RunNode) -> Path:
    """A running node with dead letters (procedures the portal does not know), a payment callback and
    finding, and the config an operator's commands read."""
    running = await run_node(scheduler=JOBS)
    for stream in generate(2, unknown_share=1.0):
        assert (await running.post(stream.events[0])).status_code == 202
    await running.settle()
    callback = CallbackRecord(AT_MS, "vcb", "TT-1", "VCB-9", "bad_signature", "", "10.0.0.9", "ab" * 32, 9)
    await running.node.store.run(units.record_callback, callback)
    finding = PaymentFinding(AT_MS, "paid_twice", "TT-1", "vcb", "VCB-10", 8000, "a second payment")
    await running.node.store.run(add_finding, finding)
    path = tmp_path / "lienthong.yaml"
    path.write_text(json.dumps(config_dict(tmp_path, peers, scheduler=JOBS)))  # JSON is YAML
    return path


async def test_dead_letters_list_and_show_their_times_in_the_one_format(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = await cli(capsys, "dlq", "list", str(config))
    assert len(times(listing)) == 2  # one per dead letter
    lines = (await cli(capsys, "dlq", "list", str(config), "--json")).splitlines()
    letters = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(letters) == 2
    for letter in letters:
        assert times(letter["updated"]) == [letter["updated"]]
        assert letter["updated"] in listing
    shown = json.loads(await cli(capsys, "dlq", "show", str(config), letters[0]["message_id"]))
    assert times(shown["created"]) == [shown["created"]]
    assert times(shown["history"][0]["started"]) == [shown["history"][0]["started"]]
    assert "duration" not in shown["history"][0]  # a length of time, not a moment


async def test_payment_callbacks_and_findings_show_their_times_in_the_one_format(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert times(await cli(capsys, "payments", "callbacks", str(config))) == [AT_TEXT]
    (line,) = (await cli(capsys, "payments", "callbacks", str(config), "--json")).splitlines()[:1]
    record = json.loads(line)
    assert (record["received_ms"], record["received"]) == (AT_MS, AT_TEXT)
    assert times(await cli(capsys, "payments", "findings", str(config))) == [AT_TEXT]
    (line,) = (await cli(capsys, "payments", "findings", str(config), "--json")).splitlines()[:1]
    assert json.loads(line)["at"] == AT_TEXT


async def test_runs_and_a_run_by_hand_show_their_times_in_the_one_format(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = await cli(capsys, "reconcile", str(config), "integrity-check", "--window", "2026-11-01")
    assert times(ran)[:3] == [
        "2026-11-01T02:00+07:00",  # the run id
        "2026-10-31T02:00:00+07:00",  # the window
        "2026-11-01T02:00:00+07:00",
    ]
    history = await cli(capsys, "runs", str(config))
    assert len(times(history)) == 2  # when it started, and the run id
    (line,) = (await cli(capsys, "runs", str(config), "--json")).splitlines()[:1]
    run: dict[str, Any] = json.loads(line)
    assert (run["window_start"], run["window_end"]) == (
        "2026-10-31T02:00:00+07:00",
        "2026-11-01T02:00:00+07:00",
    )
    assert times(run["started"]) == [run["started"]]
    assert run["started"] in history


async def test_log_lines_are_stamped_in_the_one_format(config: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    args = ["reconcile", str(config), "integrity-check", "--window", "2026-11-02"]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "lienthong.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    logged = [line for line in done.stderr.splitlines() if " INFO lienthong" in line]
    assert logged
    for line in logged:
        stamp = line.split(" ", 1)[0]
        assert ISO_WITH_OFFSET.fullmatch(stamp), line
        assert "." in stamp  # milliseconds, to order lines within a second
    times(done.stdout + done.stderr)
