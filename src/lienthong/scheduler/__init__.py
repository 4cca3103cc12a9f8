"""Scheduled jobs: reconciliation, integrity checks and KPIs, each window run once across every node.

``schedule`` (the pure schedule maths: windows, run ids, catch-up), ``runs`` (the run-history record)
and ``jobs`` (jobs and their registry) are plain, and re-exported here. ``service`` (the ``Scheduler``
that runs in the node, on the store) is imported from its module: the store imports ``runs``.
"""

from lienthong.scheduler.jobs import ENTRY_POINT_GROUP, Job, JobRegistry, RunContext, RunResult
from lienthong.scheduler.runs import OUTCOMES, RunOutcome, RunRecord
from lienthong.scheduler.schedule import MAX_SKIPPED, ZONE, Catchup, Schedule, Window, parse_cron, zone

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_SKIPPED",
    "OUTCOMES",
    "ZONE",
    "Catchup",
    "Job",
    "JobRegistry",
    "RunContext",
    "RunOutcome",
    "RunRecord",
    "RunResult",
    "Schedule",
    "Window",
    "parse_cron",
    "zone",
]
