"""The scheduler that runs in the node: jobs on their cron schedules, each window once, with history.

Every run is claimed in the store under its run id (``job:window``) before it starts: the first
attempt's record is the claim, so a second node, a restart or a manual run of the same window never runs
it again (``lienthong reconcile --force`` does, as a new attempt recording who and why). Each attempt has
a time limit; a failed or timed-out one is retried after a backoff that doubles, as a new attempt of the
same run id. History is written at the start and at the end of every attempt.

The schedule maths are APScheduler's ``CronTrigger`` under ``scheduler.schedule``; the loop that waits
for the next fire time is this module's, on the injected clock (decision 0012 says why it is not
APScheduler's ``AsyncIOScheduler``). At start, windows missed while no node ran are caught up: the
latest runs once, the older ones are recorded as skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from lienthong.bus.retry import ExponentialBackoff
from lienthong.clock import Clock, now_ms
from lienthong.config import Config, SchedulerConfig
from lienthong.errors import ConfigIssue, RunRefused, StoreError
from lienthong.observability.metrics import Metrics
from lienthong.scheduler.jobs import Job, JobRegistry, RunContext, RunResult
from lienthong.scheduler.runs import RunRecord
from lienthong.scheduler.schedule import Catchup, Schedule, Window
from lienthong.store import Store, units

log = logging.getLogger("lienthong.scheduler")

Sleep = Callable[[float], Awaitable[None]]
ABANDON_GRACE_S = 60.0
"""An attempt still ``running`` this long past its time limit has lost its node."""


@dataclass(frozen=True)
class JobPlan:
    """One configured job: its schedule, its time limit per attempt (s), and its retries."""

    schedule: Schedule
    time_limit_s: float = 3600.0
    retries: int = 2
    backoff: ExponentialBackoff = field(default_factory=lambda: doubling(60.0))
    enabled: bool = True

    @property
    def job(self) -> str:
        return self.schedule.job


def doubling(first_s: float) -> ExponentialBackoff:
    """``first_s`` before the first retry, twice as long before each next one; no cap, no jitter."""
    return ExponentialBackoff(first_s, 2.0, float("inf"), 0.0)


def plans(config: SchedulerConfig) -> dict[str, JobPlan]:
    """The ``scheduler`` section's jobs as plans (its crons were checked when the config loaded)."""
    return {
        name: JobPlan(
            Schedule(name, job.cron, config.timezone),
            job.time_limit_s,
            job.retries,
            doubling(job.backoff_s),
            job.enabled,
        )
        for name, job in config.jobs.items()
    }


def job_issues(config: Config, jobs: JobRegistry) -> list[ConfigIssue]:
    """Configured jobs that no registered job answers to, each naming ``scheduler.jobs.<name>``."""
    known = ", ".join(jobs.names()) or "none registered"
    return [
        config.issue(("scheduler", "jobs", name), f"unknown job {name!r} (known: {known})")
        for name in config.scheduler.jobs
        if name not in jobs
    ]


class Scheduler:
    """Runs ``jobs`` on the schedules of ``plans``, each window once across every node on ``store``.

    ``enabled``: whether ``start`` runs the schedules; runs by hand (``run_by_hand``) work either way.
    ``sleep`` waits between retries; ``max_nap_s`` bounds one wait for the next fire time, so a clock
    that jumps (NTP, a suspended machine) is noticed within it.
    """

    def __init__(
        self,
        store: Store,
        jobs: JobRegistry,
        plans: Mapping[str, JobPlan],
        metrics: Metrics,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        node: str = "",
        enabled: bool = True,
        max_nap_s: float = 60.0,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.plans = dict(plans)
        self.metrics = metrics
        self.enabled = enabled
        self._clock = clock
        self._sleep = sleep
        self._node = node
        self._max_nap_s = max_nap_s
        self._last_end: dict[str, datetime] = {}
        self._tasks: dict[str, asyncio.Task[RunRecord]] = {}
        self._woken = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    # -- the node's life -----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Following its schedules (or not meant to: a node with the scheduler off is not short of one)."""
        return not self.enabled or (self._loop_task is not None and not self._loop_task.done())

    async def start(self) -> None:
        """Mark attempts whose node died as failed, set the last-success gauges, catch up on windows
        missed while no node ran, and follow the schedules. Does nothing unless ``enabled``."""
        if not self.enabled:
            return
        now = self._now()
        for name, plan in self._scheduled().items():
            abandoned = await self._abandon(name, plan)
            if abandoned:
                log.warning("%s: %d attempts left running by a node that stopped: failed", name, abandoned)
            success = await self.store.run(units.last_success, name)
            # 0 for a job that never succeeded: the series exists, so an alert can see it (an absent
            # series fires nothing) without mistaking it for a success in 1970.
            ended = success.ended_ms / 1000 if success is not None and success.ended_ms is not None else 0
            self.metrics.scheduler_last_success.labels(name).set(ended)
            latest = await self.store.run(units.latest_run, name)
            self._last_end[name] = (
                datetime.fromtimestamp(latest.window_end_ms / 1000, UTC)
                if latest is not None
                else plan.schedule.fire_at_or_before(now)  # never run: nothing was missed
            )
        await self.tick()
        self._loop_task = asyncio.create_task(self._follow(), name="lienthong-scheduler")

    async def stop(self) -> None:
        """Stop following the schedules; runs under way are cut short and recorded as failed."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        running = [task for task in self._tasks.values() if not task.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until no scheduled run is under way (tests, and an orderly stop)."""
        while running := [task for task in self._tasks.values() if not task.done()]:
            await asyncio.gather(*running, return_exceptions=True)

    # -- following the schedules ---------------------------------------------------------------------------
    async def tick(self) -> None:
        """Start the runs that are due now: for each idle job, the latest window ended since the last one
        it handled, once; windows missed before it are recorded as skipped."""
        now = self._now()
        for name, plan in self._scheduled().items():
            if self._busy(name):
                continue  # one run of a job at a time: what falls due meanwhile is caught up after it
            catchup = plan.schedule.missed(self._last_end[name], now)
            if catchup is None:
                continue
            first = self._first_attempt(catchup.run)
            try:
                await self._skip(catchup)
                claimed = await self.store.run(units.claim_run, first)
            except StoreError as exc:
                log.warning("%s: cannot claim %s now (tried again shortly): %s", name, first.run_id, exc)
                continue
            self._last_end[name] = catchup.run.end
            if claimed:
                job = self.jobs.get(name)
                assert job is not None  # _scheduled() keeps registered jobs only
                task = asyncio.create_task(self._settle(plan, job, catchup.run, first), name=first.run_id)
                task.add_done_callback(lambda _: self._woken.set())  # its job may be due again
                self._tasks[name] = task

    async def _follow(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the loop must outlive any one tick's trouble
                log.exception("the scheduler's tick failed; trying again at the next one")
            await self._nap()

    async def _nap(self) -> None:
        """Wait for the next fire time of an idle job, at most ``max_nap_s``, or until a run ends."""
        now = self._now()
        due = [
            plan.schedule.next_fire(self._last_end[name])
            for name, plan in self._scheduled().items()
            if not self._busy(name)
        ]
        delay = min([(d - now).total_seconds() for d in due] + [self._max_nap_s])
        self._woken.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, delay)):
                await self._woken.wait()

    async def _skip(self, catchup: Catchup) -> None:
        if not catchup.skipped:
            return
        detail = f"missed while no node ran; coalesced into {catchup.run.run_id}"
        skipped = [
            self._first_attempt(w).ended("skipped", now_ms(self._clock), detail=detail)
            for w in catchup.skipped
        ]
        recorded = await self.store.run(units.skip_runs, skipped)
        self.metrics.scheduler_runs.labels(catchup.run.job, "skipped").inc(recorded)
        more = " (and more before them, not listed)" if catchup.uncounted else ""
        log.warning(
            "%s: %d windows missed while no node ran were skipped%s; running %s",
            catchup.run.job,
            len(catchup.skipped),
            more,
            catchup.run.run_id,
        )

    # -- runs by hand --------------------------------------------------------------------------------------
    def window_for(self, job: str, start: datetime | None = None) -> Window:
        """The window of ``job`` that ``start`` falls in, or its latest complete one; RunRefused when the
        job has no schedule or the window is not over yet."""
        plan = self._plan(job)
        now = self._now()
        if start is None:
            return plan.schedule.latest_window(now)
        window = plan.schedule.window_containing(start)
        if window.end > now:
            raise RunRefused(
                f"the window {window.run_id} is not over yet (it ends at {window.end.isoformat()})",
                job=job,
                run_id=window.run_id,
            )
        return window

    async def run_by_hand(
        self,
        window: Window,
        *,
        forced_by: str | None = None,
        forced_reason: str | None = None,
        progress: Callable[[str, int], None] | None = None,
    ) -> RunRecord:
        """Run one window now, with the job's time limit and retries. Without ``forced_by``, a window that
        has run (or is running, or was skipped) is refused; with it (and a reason), it runs again as the
        next attempt, recording who and why."""
        plan, job = self._plan(window.job), self._job(window.job)
        if (forced_by is None) != (forced_reason is None):
            raise ValueError("a forced run needs both who (forced_by) and why (forced_reason)")
        first = self._first_attempt(window, forced_by=forced_by, forced_reason=forced_reason)
        attempts = await self.store.run(units.run_attempts, window.run_id)
        if attempts and forced_by is None:
            last = attempts[-1]
            raise RunRefused(
                f"{window.run_id} has been run already (attempt {last.attempt}: {last.outcome}); run it"
                " again with --force --by WHO --reason WHY",
                job=window.job,
                run_id=window.run_id,
            )
        if attempts:
            last = attempts[-1]
            if last.outcome == "running":
                if last.started_ms >= self._abandoned_before_ms(plan):
                    # Two attempts of one window at once would read (and move) the same inputs.
                    running_s = (now_ms(self._clock) - last.started_ms) / 1000
                    raise RunRefused(
                        f"{window.run_id} attempt {last.attempt} is still running (started {running_s:.0f}"
                        f" s ago, time limit {plan.time_limit_s:g} s); force it again once it has ended",
                        job=window.job,
                        run_id=window.run_id,
                    )
                await self._abandon(window.job, plan)  # its node died: recorded so, not left running
            first = replace(first, attempt=last.attempt + 1)
        if not await self.store.run(units.claim_run, first):
            raise RunRefused(
                f"another run of {window.run_id} started at the same moment; see `lienthong runs`",
                job=window.job,
                run_id=window.run_id,
            )
        return await self._settle(plan, job, window, first, progress)

    # -- one run: its attempts -----------------------------------------------------------------------------
    async def _settle(
        self,
        plan: JobPlan,
        job: Job,
        window: Window,
        first: RunRecord,
        progress: Callable[[str, int], None] | None = None,
    ) -> RunRecord:
        """Run the claimed attempt ``first``, then retries after failures, each recorded; the last one."""
        record = first
        for retry in itertools.count(1):
            finished = await self._attempt(plan, job, window, record, progress)
            if finished.outcome == "succeeded" or retry > plan.retries:
                return finished
            delay_s = plan.backoff.delay_s(retry, 0.0)
            log.warning(
                "%s: attempt %d %s; retry in %g s", record.run_id, record.attempt, finished.outcome, delay_s
            )
            await self._sleep(delay_s)
            record = finished.next_attempt(now_ms(self._clock))
            if not await self._claim_quietly(record):
                return finished  # someone forced the window meanwhile: theirs from here
        raise AssertionError("unreachable")

    async def _attempt(
        self,
        plan: JobPlan,
        job: Job,
        window: Window,
        record: RunRecord,
        progress: Callable[[str, int], None] | None = None,
    ) -> RunRecord:
        """One attempt under the job's time limit; its end recorded, whatever happens."""
        context = RunContext(window, record.attempt, record.forced_by, record.forced_reason, progress)
        limit = asyncio.timeout(plan.time_limit_s)
        try:
            async with limit:
                result = await job(context)
            if not isinstance(result, RunResult):
                raise TypeError(f"the job answered {type(result).__name__}, not a RunResult")  # noqa: TRY301
            # A plugin's counts that are not whole numbers fail the attempt here, recorded as ended.
            counts = {str(k): int(v) for k, v in result.counts.items()}
            reports = tuple(str(report) for report in result.reports)
        except asyncio.CancelledError:
            detail = "interrupted: the node stopped during the run"
            await self._finish(record.ended("failed", now_ms(self._clock), detail=detail))
            raise
        except Exception as exc:
            if limit.expired():
                detail = f"ran past its time limit of {plan.time_limit_s:g} s"
                return await self._finish(record.ended("timed_out", now_ms(self._clock), detail=detail))
            detail = f"{type(exc).__name__}: {exc}"[:2000]
            return await self._finish(record.ended("failed", now_ms(self._clock), detail=detail))
        ended = record.ended("succeeded", now_ms(self._clock), counts=counts, reports=reports)
        return await self._finish(ended)

    async def _finish(self, record: RunRecord) -> RunRecord:
        try:
            await self.store.run(units.finish_run, record)
        except StoreError as exc:  # the attempt stays "running" until a start marks it abandoned
            log.error(  # noqa: TRY400 (the store's error says it all; no traceback)
                "%s attempt %d: its end could not be recorded: %s", record.run_id, record.attempt, exc
            )
        self.metrics.scheduler_runs.labels(record.job, record.outcome).inc()
        if record.duration_s is not None:
            self.metrics.scheduler_run_duration.labels(record.job).observe(max(0.0, record.duration_s))
        if record.outcome == "succeeded" and record.ended_ms is not None:
            self.metrics.scheduler_last_success.labels(record.job).set(record.ended_ms / 1000)
        log.info("%s attempt %d: %s", record.run_id, record.attempt, record.outcome)
        return record

    async def _claim_quietly(self, record: RunRecord) -> bool:
        try:
            return await self.store.run(units.claim_retry, record)
        except StoreError as exc:
            log.error("%s: retry not recorded, so not run: %s", record.run_id, exc)  # noqa: TRY400
            return False

    # -- helpers -------------------------------------------------------------------------------------------
    def _scheduled(self) -> dict[str, JobPlan]:
        return {n: p for n, p in self.plans.items() if p.enabled and n in self.jobs}

    def _busy(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    def _plan(self, job: str) -> JobPlan:
        plan = self.plans.get(job)
        if plan is None:
            configured = ", ".join(sorted(self.plans)) or "none"
            raise RunRefused(f"no job {job!r} in scheduler.jobs (configured: {configured})", job=job)
        return plan

    def _job(self, name: str) -> Job:
        job = self.jobs.get(name)
        if job is None:
            raise RunRefused(
                f"no job {name!r} is registered (known: {', '.join(self.jobs.names())})", job=name
            )
        return job

    def _first_attempt(
        self, window: Window, *, forced_by: str | None = None, forced_reason: str | None = None
    ) -> RunRecord:
        return RunRecord(
            window.job,
            window.run_id,
            1,
            window.start_ms,
            window.end_ms,
            now_ms(self._clock),
            node=self._node,
            forced_by=forced_by,
            forced_reason=forced_reason,
        )

    def _abandoned_before_ms(self, plan: JobPlan) -> int:
        """An attempt of ``plan``'s job still running that started before this is its node's, dead."""
        return now_ms(self._clock) - round((plan.time_limit_s + ABANDON_GRACE_S) * 1000)

    async def _abandon(self, job: str, plan: JobPlan) -> int:
        """Mark the job's attempts left running by a node that died as failed; how many."""
        detail = "abandoned: still running past its time limit; the node running it stopped or died"
        cutoff = self._abandoned_before_ms(plan)
        return await self.store.run(units.abandon_runs, job, cutoff, now_ms(self._clock), detail)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)
