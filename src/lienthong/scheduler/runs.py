"""The run history: one record per attempt at one job's window, kept in the store (``Tx.runs``).

A run is claimed in the store under its run id (``job:window``) before it starts: the first attempt's
record is the claim, so a second node, a restart or a manual run of the same window finds it and does not
run the window again. A retry after a failure, and a forced run (``lienthong reconcile --force``), are the
next attempts of the same run id, each with its own record.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

RunOutcome = Literal["running", "succeeded", "failed", "timed_out", "skipped"]
"""``running``: claimed and under way (or its node died: see ``Scheduler.start``); ``skipped``: a window
missed while no node ran, coalesced into a later run and never run itself."""

OUTCOMES: tuple[RunOutcome, ...] = ("running", "succeeded", "failed", "timed_out", "skipped")


@dataclass(frozen=True)
class RunRecord:
    """One attempt at one window of one job. Times are milliseconds since the epoch.

    ``counts`` and ``reports`` are what the job said it did (rows read, discrepancies by kind) and where it
    wrote its reports. ``forced_by`` and ``forced_reason`` are set on a forced run's attempts. ``detail``
    is the error of a failed or timed-out attempt, or why a window was skipped.
    """

    job: str
    run_id: str
    attempt: int
    window_start_ms: int
    window_end_ms: int
    started_ms: int
    outcome: RunOutcome = "running"
    ended_ms: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    reports: tuple[str, ...] = ()
    node: str = ""
    forced_by: str | None = None
    forced_reason: str | None = None
    detail: str | None = None

    def ended(
        self,
        outcome: RunOutcome,
        ended_ms: int,
        *,
        counts: dict[str, int] | None = None,
        reports: tuple[str, ...] = (),
        detail: str | None = None,
    ) -> RunRecord:
        """This attempt, finished."""
        return replace(
            self,
            outcome=outcome,
            ended_ms=ended_ms,
            counts=dict(counts or {}),
            reports=reports,
            detail=detail,
        )

    def next_attempt(self, started_ms: int) -> RunRecord:
        """The record of the attempt after this one (a retry), running from ``started_ms``."""
        return replace(
            self,
            attempt=self.attempt + 1,
            started_ms=started_ms,
            outcome="running",
            ended_ms=None,
            counts={},
            reports=(),
            detail=None,
        )

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_ms is None else (self.ended_ms - self.started_ms) / 1000
