"""The scheduler in the node: each window claimed once across schedulers, catch-up at start, time limits,
retries with backoff, forced runs with who and why, metrics, and the `runs` and `reconcile` commands.

Time is injected: a clock the test moves, and a sleep that records the backoff instead of waiting."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import sqlite3
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

import stores
from lienthong.app import Lienthong, build
from lienthong.cli import main
from lienthong.config import Config, parse_config
from lienthong.errors import ConfigError, RunRefused
from lienthong.observability.metrics import Metrics
from lienthong.scheduler import JobRegistry, RunContext, RunRecord, RunResult, Schedule, zone
from lienthong.scheduler.service import JobPlan, Scheduler, doubling
from lienthong.store import Store, units
from lienthong.store import postgres as pg
from lienthong.store.runner import ThreadRunner
from lienthong.store.sqlite import SCHEMA_VERSION, SqliteBackend

HCM = zone("Asia/Ho_Chi_Minh")
DAILY = "0 2 * * *"


def at(*parts: int) -> float:
    """Seconds since the epoch of a wall-clock time in Hồ Chí Minh City."""
    return datetime(*parts, tzinfo=HCM).timestamp()  # type: ignore[arg-type,misc]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Naps:
    """The injected sleep: records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class Job:
    """A job for tests: answers ``script`` in turn (an exception to raise, "hang", or counts)."""

    def __init__(self, *script: Any, gate: asyncio.Event | None = None) -> None:
        self.script = list(script)
        self.calls: list[RunContext] = []
        self.gate = gate

    async def __call__(self, context: RunContext) -> RunResult:
        self.calls.append(context)
        step = self.script[min(len(self.calls), len(self.script)) - 1] if self.script else {}
        if self.gate is not None:
            await self.gate.wait()
        if step == "hang":
            await asyncio.Event().wait()
        if isinstance(step, Exception):
            raise step
        return RunResult(counts=step, reports=(f"/reports/{context.run_id}.json",))


def scheduler(
    store: Store,
    job: Job,
    clock: Clock,
    *,
    naps: Naps | None = None,
    registry: CollectorRegistry | None = None,
    cron: str = DAILY,
    **plan: Any,
) -> Scheduler:
    return Scheduler(
        store,
        JobRegistry({"bank": job}),
        {"bank": JobPlan(Schedule("bank", cron), **plan)},
        Metrics(registry or CollectorRegistry()),
        clock=clock,
        sleep=naps or Naps(),
        node="test",
    )


async def history(store: Store, job: str = "bank") -> list[tuple[str, int, str]]:
    """(run id, attempt, outcome) of every attempt, oldest first."""
    runs = await store.run(units.recent_runs, 1000, job)
    return [(r.run_id, r.attempt, r.outcome) for r in reversed(runs)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = Store(ThreadRunner(functools.partial(SqliteBackend, tmp_path / "l.db", synchronous="normal")))
    opened.open()
    yield opened
    opened.close()


@pytest.fixture
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two stores on one database: a SQLite file (the node's, and one opened beside it as `lienthong
    reconcile` does) or one PostgreSQL schema (two nodes)."""
    if request.param == "sqlite":
        path = tmp_path / "l.db"
        first = Store(ThreadRunner(functools.partial(SqliteBackend, path, synchronous="normal")))
        first.open()
        second = Store(ThreadRunner(functools.partial(SqliteBackend, path, node=None)))
    else:
        dsn = request.getfixturevalue("pg_dsn")
        first = stores.make_store("postgres", tmp_path, dsn)
        first.open()
        second = stores.make_store("postgres", tmp_path, dsn)
    second.open()
    yield first, second
    second.close()
    first.close()


# -- one run per window ------------------------------------------------------------------------------------
@pytest.mark.parametrize("two_stores", ["sqlite", "postgres"], indirect=True)
async def test_two_schedulers_on_one_store_race_for_a_window_and_exactly_one_runs_it(
    two_stores: tuple[Store, Store],
) -> None:
    gate = asyncio.Event()
    clock = Clock(at(2026, 12, 1, 1, 59))
    jobs = [Job({"rows": 1}, gate=gate), Job({"rows": 1}, gate=gate)]
    nodes = [scheduler(s, j, clock) for s, j in zip(two_stores, jobs, strict=True)]
    for node in nodes:
        await node.start()
    try:
        clock.now = at(2026, 12, 1, 2, 0, 1)
        await asyncio.gather(*(node.tick() for node in nodes))
        gate.set()
        for node in nodes:
            await node.idle()
        assert sum(len(j.calls) for j in jobs) == 1
        assert await history(two_stores[0]) == [("bank:2026-12-01T02:00+07:00", 1, "succeeded")]
        for node in nodes:  # a later tick of either changes nothing
            await node.tick()
            await node.idle()
        assert sum(len(j.calls) for j in jobs) == 1
    finally:
        for node in nodes:
            await node.stop()


async def test_a_window_is_run_once_whatever_the_number_of_ticks(store: Store) -> None:
    clock = Clock(at(2026, 12, 1, 1))
    job = Job({"matched": 3})
    node = scheduler(store, job, clock)
    await node.start()
    try:
        await node.tick()
        assert job.calls == []  # nothing due before 02:00
        clock.now = at(2026, 12, 1, 2)
        await node.tick()
        await node.idle()
        await node.tick()
        await node.idle()
        (call,) = job.calls
        assert (call.run_id, call.attempt, call.window.start) == (
            "bank:2026-12-01T02:00+07:00",
            1,
            datetime(2026, 11, 30, 2, tzinfo=HCM),
        )
        (record,) = await store.run(units.recent_runs, 10, None)
        assert (record.counts, record.reports, record.node) == (
            {"matched": 3},
            ("/reports/bank:2026-12-01T02:00+07:00.json",),
            "test",
        )
        assert (record.started_ms, record.ended_ms) == (round(clock.now * 1000), round(clock.now * 1000))
    finally:
        await node.stop()


# -- catch-up at start -------------------------------------------------------------------------------------
def node_config(tmp_path: Path, **job: Any) -> Config:
    return Config.model_validate(
        {
            "store": {"path": str(tmp_path / "l.db"), "process": False, "synchronous": "normal"},
            "dispatcher": {"enabled": False},
            "scheduler": {"enabled": True, "jobs": {"bank": {"cron": DAILY, **job}}},
        }
    )


async def started_node(config: Config, job: Job, clock: Clock) -> Lienthong:
    node = build(config, clock=clock, registry=CollectorRegistry(), jobs=JobRegistry({"bank": job}))
    await node.start()
    assert node.scheduler is not None
    await node.scheduler.idle()
    return node


async def test_windows_missed_while_the_node_was_down_run_once_at_start(tmp_path: Path) -> None:
    config = node_config(tmp_path)
    job = Job({"rows": 1})
    clock = Clock(at(2026, 12, 1, 1))
    node = await started_node(config, job, clock)  # never run before: nothing to catch up
    assert job.calls == []
    clock.now = at(2026, 12, 1, 2, 0, 5)
    assert node.scheduler is not None
    await node.scheduler.tick()
    await node.scheduler.idle()
    await node.stop()
    assert len(job.calls) == 1

    clock.now = at(2026, 12, 4, 9)  # down for three fire times
    node = await started_node(config, job, clock)
    assert [c.run_id for c in job.calls[1:]] == ["bank:2026-12-04T02:00+07:00"]  # once, the latest
    assert await history(node.store) == [
        ("bank:2026-12-01T02:00+07:00", 1, "succeeded"),
        ("bank:2026-12-02T02:00+07:00", 1, "skipped"),
        ("bank:2026-12-03T02:00+07:00", 1, "skipped"),
        ("bank:2026-12-04T02:00+07:00", 1, "succeeded"),
    ]
    (skipped,) = await node.store.run(units.run_attempts, "bank:2026-12-02T02:00+07:00")
    assert skipped.detail == "missed while no node ran; coalesced into bank:2026-12-04T02:00+07:00"
    await node.stop()

    node = await started_node(config, job, clock)  # a restart within the same window runs nothing
    await node.stop()
    assert len(job.calls) == 2


async def test_an_attempt_whose_node_died_is_failed_at_start_not_left_running(tmp_path: Path) -> None:
    config = node_config(tmp_path, time_limit_s=60)
    clock = Clock(at(2026, 12, 1, 3))
    node = build(config, clock=clock, registry=CollectorRegistry(), jobs=JobRegistry({"bank": Job()}))
    node.store.open()
    window = Schedule("bank", DAILY).latest_window(datetime.fromtimestamp(clock.now, HCM))
    started = round((clock.now - 121) * 1000)  # its time limit and the grace are over
    dead = RunRecord("bank", window.run_id, 1, window.start_ms, window.end_ms, started)
    await node.store.run(units.claim_run, dead)
    node.store.close()
    node = await started_node(config, Job(), clock)
    (record,) = await node.store.run(units.run_attempts, window.run_id)
    await node.stop()
    assert record.outcome == "failed"
    assert record.detail is not None
    assert record.detail.startswith("abandoned")


# -- time limits and retries -------------------------------------------------------------------------------
async def test_an_attempt_past_its_time_limit_is_timed_out_and_retried(store: Store) -> None:
    naps = Naps()
    job = Job("hang", {"rows": 2})
    clock = Clock(at(2026, 12, 1, 2, 30))
    node = scheduler(store, job, clock, naps=naps, time_limit_s=0.05, retries=2, backoff=doubling(0.5))
    window = node.window_for("bank")
    record = await node.run_by_hand(window)
    assert (record.attempt, record.outcome, record.counts) == (2, "succeeded", {"rows": 2})
    assert naps.delays == [0.5]
    first, _ = await store.run(units.run_attempts, window.run_id)
    assert (first.outcome, first.detail) == ("timed_out", "ran past its time limit of 0.05 s")


async def test_a_failing_job_is_retried_with_doubling_backoff_then_recorded_failed(store: Store) -> None:
    naps = Naps()
    registry = CollectorRegistry()
    job = Job(RuntimeError("the bank's file is missing"))
    clock = Clock(at(2026, 12, 1, 2, 30))
    node = scheduler(store, job, clock, naps=naps, registry=registry, retries=3, backoff=doubling(0.25))
    record = await node.run_by_hand(node.window_for("bank"))
    assert (record.attempt, record.outcome) == (4, "failed")
    assert record.detail == "RuntimeError: the bank's file is missing"
    assert naps.delays == [0.25, 0.5, 1.0]
    assert [a for _, a, _ in await history(store)] == [1, 2, 3, 4]
    assert (
        registry.get_sample_value("lienthong_scheduler_runs_total", {"job": "bank", "outcome": "failed"}) == 4
    )
    assert (
        registry.get_sample_value("lienthong_scheduler_last_success_timestamp_seconds", {"job": "bank"})
        is None
    )


# -- runs by hand ------------------------------------------------------------------------------------------
async def test_a_window_that_ran_runs_again_only_when_forced_and_records_who_and_why(store: Store) -> None:
    job = Job({"rows": 1})
    clock = Clock(at(2026, 12, 1, 2, 30))
    node = scheduler(store, job, clock)
    window = node.window_for("bank")
    await node.run_by_hand(window)
    with pytest.raises(RunRefused, match=r"has been run already \(attempt 1: succeeded\).*--force"):
        await node.run_by_hand(window)
    with pytest.raises(ValueError, match="both who"):
        await node.run_by_hand(window, forced_by="ops")
    forced = await node.run_by_hand(window, forced_by="ops", forced_reason="the bank resent the file")
    assert (forced.attempt, forced.forced_by, forced.forced_reason) == (2, "ops", "the bank resent the file")
    assert [c.forced_by for c in job.calls] == [None, "ops"]
    assert await history(store) == [(window.run_id, 1, "succeeded"), (window.run_id, 2, "succeeded")]


async def test_a_window_not_over_or_a_job_not_configured_is_refused(store: Store) -> None:
    node = scheduler(store, Job(), Clock(at(2026, 12, 1, 2, 30)))
    with pytest.raises(RunRefused, match=r"bank:2026-12-02T02:00\+07:00 is not over yet"):
        node.window_for("bank", datetime(2026, 12, 1, 3, tzinfo=HCM))
    with pytest.raises(RunRefused, match=r"no job 'kpi' in scheduler.jobs \(configured: bank\)"):
        node.window_for("kpi")


async def test_metrics_say_when_a_job_last_succeeded_even_after_a_restart(store: Store) -> None:
    clock = Clock(at(2026, 12, 1, 2, 30))
    registry = CollectorRegistry()
    node = scheduler(store, Job({}), clock, registry=registry)
    await node.run_by_hand(node.window_for("bank"))
    labels = {"job": "bank"}
    assert (
        registry.get_sample_value("lienthong_scheduler_last_success_timestamp_seconds", labels) == clock.now
    )
    assert registry.get_sample_value("lienthong_scheduler_run_duration_seconds_count", labels) == 1
    again = CollectorRegistry()
    restarted = scheduler(store, Job({}), Clock(clock.now + 60), registry=again)
    await restarted.start()
    await restarted.stop()
    assert again.get_sample_value("lienthong_scheduler_last_success_timestamp_seconds", labels) == clock.now


async def test_a_job_that_never_succeeded_has_a_last_success_of_zero_so_an_alert_can_see_it(
    store: Store,
) -> None:
    registry = CollectorRegistry()
    node = scheduler(store, Job(RuntimeError("no file")), Clock(at(2026, 12, 1, 1, 0)), registry=registry)
    await node.start()
    await node.stop()
    labels = {"job": "bank"}
    assert registry.get_sample_value("lienthong_scheduler_last_success_timestamp_seconds", labels) == 0


async def test_a_stop_during_a_run_records_it_as_interrupted(store: Store) -> None:
    clock = Clock(at(2026, 12, 1, 1, 59))
    job = Job("hang")
    node = scheduler(store, job, clock)
    await node.start()
    clock.now = at(2026, 12, 1, 2)
    await node.tick()
    while not job.calls:
        await asyncio.sleep(0.001)
    await node.stop()
    (record,) = await store.run(units.recent_runs, 10, None)
    assert (record.outcome, record.detail) == ("failed", "interrupted: the node stopped during the run")


async def test_the_node_s_scheduler_fires_at_the_fire_time_by_itself(store: Store) -> None:
    """The one test on the real clock: a per-minute job whose next fire is 0.2 s away."""
    offset = math.ceil(time.time() / 60) * 60 - 0.2 - time.time()
    ran = asyncio.Event()

    async def job(context: RunContext) -> RunResult:
        ran.set()
        return RunResult()

    node = Scheduler(
        store,
        JobRegistry({"bank": job}),
        {"bank": JobPlan(Schedule("bank", "* * * * *"))},
        Metrics(CollectorRegistry()),
        clock=lambda: time.time() + offset,
    )
    await node.start()
    try:
        await asyncio.wait_for(ran.wait(), 5)
    finally:
        await node.stop()


# -- config ------------------------------------------------------------------------------------------------
def test_a_bad_cron_or_zone_is_a_config_error_naming_the_key() -> None:
    text = "scheduler:\n  timezone: Mars/Olympus\n  jobs:\n    bank:\n      cron: '0 2 * * 1'\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, file="l.yaml", env={})
    message = str(caught.value)
    assert "l.yaml:2 scheduler.timezone: Value error, unknown time zone 'Mars/Olympus'" in message
    assert "l.yaml:5 scheduler.jobs.bank.cron: Value error, write the day of the week as names" in message


def test_an_unknown_job_is_a_config_error_naming_it(tmp_path: Path) -> None:
    text = "scheduler:\n  jobs:\n    bank: {cron: '0 2 * * *'}\n    bnak: {cron: '0 2 * * *'}\n"
    config = parse_config(text, file="l.yaml", env={})
    with pytest.raises(
        ConfigError, match=r"l.yaml:4 scheduler.jobs.bnak: unknown job 'bnak' \(known: bank, "
    ):
        build(config, registry=CollectorRegistry(), jobs=JobRegistry({"bank": Job()}))


def test_every_scheduler_key_is_described_in_the_json_schema() -> None:
    schema = Config.model_json_schema()["$defs"]
    for name in ("SchedulerConfig", "JobConfig"):
        assert all("description" in p for p in schema[name]["properties"].values()), name


# -- the commands ------------------------------------------------------------------------------------------
PLUGIN = """
from lienthong.scheduler import RunResult

async def bank(context):
    return RunResult(counts={"matched": 3}, reports=(f"/reports/{context.run_id}.html",))

async def broken(context):
    raise RuntimeError("no statement for this window")
"""


@pytest.fixture
def cli_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with two jobs a plugin provides through the ``lienthong.jobs`` entry points."""
    site = tmp_path / "site"
    info = site / "lienthong_test_jobs-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lienthong-test-jobs\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[lienthong.jobs]\nbank = lienthong_test_jobs:bank\nbroken = lienthong_test_jobs:broken\n"
    )
    (site / "lienthong_test_jobs.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(site))
    config = tmp_path / "lienthong.yaml"
    jobs = {"bank": {"cron": DAILY}, "broken": {"cron": DAILY, "retries": 0}}
    store = {"path": str(tmp_path / "l.db"), "synchronous": "normal", "process": False}
    config.write_text(json.dumps({"store": store, "scheduler": {"jobs": jobs}}))
    assert main(["db", "upgrade", str(config)]) == 0
    return config


def test_reconcile_runs_a_window_once_and_again_only_when_forced(
    cli_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    window = ["--window", "2026-11-01T03:00"]
    assert main(["reconcile", str(cli_config), "bank", *window]) == 0
    out = capsys.readouterr().out
    assert "run bank:2026-11-02T02:00+07:00: 2026-11-01T02:00:00+07:00 to 2026-11-02T02:00:00+07:00" in out
    assert "#1  succeeded" in out
    assert "matched=3" in out
    assert "report: /reports/bank:2026-11-02T02:00+07:00.html" in out

    assert main(["reconcile", str(cli_config), "bank", *window]) == 1
    assert "has been run already (attempt 1: succeeded)" in capsys.readouterr().err
    assert main(["reconcile", str(cli_config), "bank", *window, "--force"]) == 2
    assert "--force needs --by WHO and --reason WHY" in capsys.readouterr().err
    forced = ["--force", "--by", "an", "--reason", "the bank resent the file"]
    assert main(["reconcile", str(cli_config), "bank", *window, *forced]) == 0
    assert "forced by an: the bank resent the file" in capsys.readouterr().out

    assert main(["runs", str(cli_config), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["attempt"], r["outcome"], r["forced_by"]) for r in lines] == [
        (2, "succeeded", "an"),
        (1, "succeeded", None),
    ]
    assert lines[0]["counts"] == {"matched": 3}


def test_a_failed_run_by_hand_exits_non_zero_and_shows_in_the_history(
    cli_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reconcile", str(cli_config), "broken", "--window", "2026-11-01"]) == 1
    assert "#1  failed" in capsys.readouterr().out
    assert main(["runs", str(cli_config), "--job", "broken"]) == 0
    captured = capsys.readouterr()
    assert "broken:2026-11-01T02:00+07:00  #1  failed" in captured.out
    assert "RuntimeError: no statement for this window" in captured.out
    assert "1 runs" in captured.err
    assert main(["runs", str(cli_config), "--job", "bank"]) == 0
    assert "0 runs" in capsys.readouterr().err
    assert main(["reconcile", str(cli_config), "kpi"]) == 2  # a job that is not configured: bad input
    assert "no job 'kpi' in scheduler.jobs (configured: bank, broken)" in capsys.readouterr().err


def test_check_names_a_job_no_plugin_provides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "lienthong.yaml"
    config.write_text("scheduler:\n  jobs:\n    bank: {cron: '0 2 * * *'}\n")
    assert main(["check", str(config)]) == 1
    assert f"{config}:3 scheduler.jobs.bank: unknown job 'bank'" in capsys.readouterr().err


# -- schema 4 (before the run history) to today's -----------------------------------------------------------------------------------------
def test_db_upgrade_gives_a_version_4_sqlite_store_the_run_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "l.db"
    config = tmp_path / "lienthong.yaml"
    config.write_text(json.dumps({"store": {"path": str(path)}}))
    assert main(["db", "upgrade", str(config)]) == 0
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE runs")
        db.execute("UPDATE schema_version SET version = 4")
    assert main(["db", "upgrade", str(config)]) == 0
    assert f"from schema version 4 to {SCHEMA_VERSION}" in capsys.readouterr().out
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_db_upgrade_gives_a_version_4_postgres_store_the_run_history(
    tmp_path: Path, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "lienthong.yaml"
    config.write_text(json.dumps({"store": {"kind": "postgres", "dsn": pg_dsn}}))
    assert main(["db", "upgrade", str(config)]) == 0
    with psycopg.connect(pg_dsn) as connection:
        connection.execute("DROP TABLE runs")
        connection.execute("UPDATE schema_version SET version = 4")
    assert main(["db", "upgrade", str(config)]) == 0
    assert f"at PostgreSQL from schema version 4 to {pg.SCHEMA_VERSION}" in capsys.readouterr().out
    with psycopg.connect(pg_dsn) as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone() == (0,)
