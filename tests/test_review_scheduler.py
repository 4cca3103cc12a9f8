"""Review probes: forced runs of the scheduler."""

from __future__ import annotations

import asyncio
import contextlib

from lienthong.errors import RunRefused
from lienthong.scheduler import RunContext, RunResult
from lienthong.scheduler.runs import RunRecord
from lienthong.store import Store, units
from test_scheduler import Clock, Job, at, scheduler, store  # noqa: F401 (the store fixture)


async def test_a_forced_run_does_not_run_a_window_whose_attempt_is_still_under_way(store: Store) -> None:  # noqa: F811
    # Given the scheduled attempt of a window still running (well within its time limit of an hour)
    gate = asyncio.Event()
    job = Job({"rows": 1}, gate=gate)
    clock = Clock(at(2026, 12, 1, 2, 30))
    node = scheduler(store, job, clock)
    window = node.window_for("bank")
    first = asyncio.create_task(node.run_by_hand(window))
    await asyncio.sleep(0.05)
    assert len(job.calls) == 1
    # When an operator forces the window meanwhile
    try:
        forced = asyncio.create_task(node.run_by_hand(window, forced_by="ops", forced_reason="looks stuck"))
        await asyncio.sleep(0.05)
        concurrent = len(job.calls)
    finally:
        gate.set()
    await first
    with contextlib.suppress(RunRefused):
        await forced
    # Then the job is not run twice at once on the same window (the bank job reads and moves the same
    # inbox files in both): the forced run is refused, or waits for the first
    assert concurrent == 1, "two attempts of one window ran at the same time"


async def test_a_forced_run_is_one_operator_action_in_the_message_log_however_many_retries(
    store: Store,  # noqa: F811
) -> None:
    # Given a window that ran, forced again by an operator once, and failing: the job retries twice
    job = Job({"rows": 1}, RuntimeError("bank file unreadable"))
    clock = Clock(at(2026, 12, 1, 2, 30))
    node = scheduler(store, job, clock, retries=2)
    window = node.window_for("bank")
    await node.run_by_hand(window)
    await node.run_by_hand(window, forced_by="ops", forced_reason="the bank resent the file")
    records = await store.run(units.log_about, window.run_id, 100)
    # Then the log says the operator forced it once: the scheduler's retries are not the operator's acts
    assert len(records) == 1, f"{len(records)} 'forced run' records for one --force"


async def careless(context: RunContext) -> RunResult:
    """A plugin job answering a RunResult whose counts are not counts."""
    return RunResult(counts={"rows": "about a thousand"})  # type: ignore[dict-item]


async def test_an_attempt_whose_job_answers_counts_that_are_not_numbers_is_recorded_as_ended(
    store: Store,  # noqa: F811
) -> None:
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from lienthong.observability.metrics import Metrics  # noqa: PLC0415
    from lienthong.scheduler import JobRegistry  # noqa: PLC0415
    from lienthong.scheduler.schedule import Schedule  # noqa: PLC0415
    from lienthong.scheduler.service import JobPlan, Scheduler  # noqa: PLC0415

    node = Scheduler(
        store,
        JobRegistry({"bank": careless}),
        {"bank": JobPlan(Schedule("bank", "0 2 * * *"), retries=0)},
        Metrics(CollectorRegistry()),
        clock=Clock(at(2026, 12, 1, 2, 30)),
        node="test",
    )
    window = node.window_for("bank")
    with contextlib.suppress(Exception):
        await node.run_by_hand(window)
    # Then its end is recorded ("one attempt ... its end recorded, whatever happens"), not left running
    (attempt,) = await store.run(units.run_attempts, window.run_id)
    assert attempt.outcome != "running", "the attempt is left 'running' until some node restarts"


async def test_forcing_a_window_over_an_attempt_its_dead_node_left_running_records_that_attempt_failed(
    store: Store,  # noqa: F811
) -> None:
    # Given a window's attempt left running two hours ago by a node that died (time limit one hour)
    job = Job({"rows": 1})
    clock = Clock(at(2026, 12, 1, 4, 30))
    node = scheduler(store, job, clock)
    window = node.window_for("bank")
    stale = RunRecord(
        "bank",
        window.run_id,
        1,
        int(window.start.timestamp() * 1000),
        int(window.end.timestamp() * 1000),
        int((clock.now - 7200) * 1000),
    )
    assert await store.run(units.claim_run, stale)
    # When an operator forces the window
    record = await node.run_by_hand(window, forced_by="ops", forced_reason="the node died")
    # Then it runs as attempt 2, and attempt 1 is recorded as abandoned, not left running
    assert (record.attempt, record.outcome) == (2, "succeeded")
    first, _ = await store.run(units.run_attempts, window.run_id)
    assert first.outcome == "failed"
    assert "abandoned" in (first.detail or "")
