"""Jobs: async callables ``(RunContext) -> RunResult`` in a registry keyed by job name.

A job knows nothing of schedules, claims, time limits or retries: the scheduler (``scheduler.service``)
gives it one window and records what it answers. A job that needs the store or an adapter gets it when it
is built, at the composition root, as a callable object.

``JobRegistry.with_plugins()`` holds the built-in jobs (none yet: issue 12's reconciliation, integrity and
KPI jobs register here) and every job installed packages declare under the entry point group
``lienthong.jobs`` (a ``Job`` named by the entry point's name). A plugin that does not load, or whose object
is not callable, is named in a ConfigError (``loading_plugins``: in a list of issues), not a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from lienthong import plugins
from lienthong.errors import ConfigError, ConfigIssue
from lienthong.scheduler.schedule import Window

ENTRY_POINT_GROUP = "lienthong.jobs"


@dataclass(frozen=True)
class RunContext:
    """One attempt at one window: what a job is asked to do. ``forced_by`` is set on a forced run."""

    window: Window
    attempt: int
    forced_by: str | None = None
    forced_reason: str | None = None
    progress: Callable[[str, int], None] | None = field(default=None, compare=False, repr=False)
    """Where a job says how far it got (``report``): ``lienthong reconcile`` shows it; scheduled runs
    have none."""

    def report(self, what: str, done: int) -> None:
        """``done`` of ``what`` so far ("transactions read", 120000); safe from a worker thread."""
        if self.progress is not None:
            self.progress(what, done)

    @property
    def job(self) -> str:
        return self.window.job

    @property
    def run_id(self) -> str:
        return self.window.run_id

    @property
    def stamp(self) -> str:
        """This attempt as a file name: ``bank-reconcile:2026-12-02T02:00+07:00``, attempt 1 →
        ``2026-12-02T0200+0700-1`` (reports and moved files go under it)."""
        _, _, when = self.run_id.partition(":")
        return re.sub(r"[^0-9A-Za-z+T-]", "", when) + f"-{self.attempt}"


@dataclass(frozen=True)
class RunResult:
    """What a job did: ``counts`` (rows read, discrepancies by kind…) and the reports it wrote."""

    counts: Mapping[str, int] = field(default_factory=dict)
    reports: tuple[str, ...] = ()


Job = Callable[[RunContext], Awaitable[RunResult]]


class JobRegistry:
    """Jobs by name."""

    def __init__(self, jobs: Mapping[str, Job] | None = None) -> None:
        self._jobs: dict[str, Job] = dict(jobs or {})

    @classmethod
    def with_plugins(cls, group: str = ENTRY_POINT_GROUP) -> JobRegistry:
        """The built-in jobs plus every job installed packages declare under ``group``. Raises ConfigError
        naming each entry point that does not load, is not callable, or whose name another one took."""
        registry, issues = cls.loading_plugins(group)
        if issues:
            raise ConfigError(issues)
        return registry

    @classmethod
    def loading_plugins(cls, group: str = ENTRY_POINT_GROUP) -> tuple[JobRegistry, list[ConfigIssue]]:
        """The jobs of every plugin that loads, and an issue for each one that does not."""
        registry = cls()
        loaded, issues = plugins.load_all(entry_points(group=group))
        for entry, job in loaded:
            if not callable(job):
                issues.append(plugins.issue(entry, f"declares {job!r}, not a job (an async callable)"))
            elif entry.name in registry:
                issues.append(
                    plugins.issue(entry, f"declares the job {entry.name!r}, which another plugin declares")
                )
            else:
                registry.register(entry.name, job)
        return registry, issues

    def register(self, name: str, job: Job) -> None:
        """Add ``job`` as ``name``; ValueError when the name is taken."""
        if name in self._jobs:
            raise ValueError(f"a job named {name!r} is registered already")
        self._jobs[name] = job

    def get(self, name: str) -> Job | None:
        return self._jobs.get(name)

    def names(self) -> list[str]:
        return sorted(self._jobs)

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._jobs))
