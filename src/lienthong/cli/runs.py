"""``lienthong runs`` (the scheduler's run history) and ``lienthong reconcile`` (one job's window, now).

Both open the store beside a running node, as ``dlq`` does. A run by hand is claimed in the store like a
scheduled one: a window that has run is refused unless ``--force``, which records who and why.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from lienthong.cli.dlq import CONFIG_HELP, run_on_store
from lienthong.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from lienthong.cli.terminal import shown
from lienthong.errors import RunRefused
from lienthong.timefmt import moment, with_moments

if TYPE_CHECKING:
    from lienthong.scheduler.runs import RunRecord


def add_commands(sub: Any) -> None:
    runs = sub.add_parser("runs", help="the scheduler's run history, newest first")
    runs.add_argument("config", type=Path, help=CONFIG_HELP)
    runs.add_argument("--job", help="only this job's runs")
    runs.add_argument("--limit", type=int, default=50, metavar="N", help="at most N attempts (default 50)")
    runs.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line; each *_ms moment also as ISO 8601 text (started_ms → started)",
    )
    runs.set_defaults(handler=_runs)

    reconcile = sub.add_parser(
        "reconcile", help="run one scheduled job for one window now, and print its outcome and reports"
    )
    reconcile.add_argument("config", type=Path, help=CONFIG_HELP)
    reconcile.add_argument("job", help="a job of scheduler.jobs")
    reconcile.add_argument(
        "--window",
        metavar="START",
        help="the window this moment falls in, ISO 8601 (2026-12-01 or 2026-12-01T02:00; without an"
        " offset, in scheduler.timezone); default: the latest complete window",
    )
    reconcile.add_argument("--force", action="store_true", help="run a window that has run already")
    reconcile.add_argument("--by", help="who forces the run (recorded; needed with --force)")
    reconcile.add_argument("--reason", help="why (recorded; needed with --force)")
    reconcile.set_defaults(handler=_reconcile)


def _runs(args: argparse.Namespace) -> int:
    from lienthong.store import units  # noqa: PLC0415 (keep `lienthong --help` fast)

    async def work(node: Any) -> int:
        records = await node.store.run(units.recent_runs, args.limit, args.job)
        for record in records:
            print(
                orjson.dumps(with_moments(dataclasses.asdict(record))).decode() if args.json else line(record)
            )
        if not args.json:
            print(f"{len(records)} runs", file=sys.stderr)
        return EXIT_OK

    return run_on_store(args.config, work)


def line(r: RunRecord) -> str:
    """One attempt as one line (and a second for its detail or reason); control characters escaped."""
    took = f"{r.duration_s:.1f} s" if r.duration_s is not None else "-"
    counts = " ".join(f"{shown(k)}={v}" for k, v in sorted(r.counts.items()))
    text = f"{moment(r.started_ms)}  {r.run_id}  #{r.attempt}  {r.outcome:<9} {took:>9}  {counts}".rstrip()
    for report in r.reports:
        text += f"\n    report: {shown(report)}"
    if r.forced_by is not None:
        text += f"\n    forced by {shown(r.forced_by)}: {shown(r.forced_reason or '')}"
    if r.detail:
        text += f"\n    {shown(r.detail)}"
    return text


def _reconcile(args: argparse.Namespace) -> int:
    if args.force and not (args.by and args.reason):
        print("--force needs --by WHO and --reason WHY (both are recorded)", file=sys.stderr)
        return EXIT_USAGE
    if not args.force and (args.by or args.reason):
        print("--by and --reason go with --force", file=sys.stderr)
        return EXIT_USAGE

    async def work(node: Any) -> int:
        scheduler = node.scheduler
        try:
            start = _moment(args.window, node.config.scheduler.timezone) if args.window else None
            window = scheduler.window_for(args.job, start)
            print(f"run {window.run_id}: {window.start.isoformat()} to {window.end.isoformat()}", flush=True)
            forced = {"forced_by": args.by, "forced_reason": args.reason} if args.force else {}
            progress = Progress(sys.stderr, window.job)
            try:
                record = await scheduler.run_by_hand(window, **forced, progress=progress)
            finally:
                progress.done()
        except RunRefused as exc:
            print(f"refused: {exc}", file=sys.stderr)
            # Without a run id the job itself is unknown: a wrong name, not a refused window.
            return EXIT_FAILED if exc.run_id is not None else EXIT_USAGE
        except (ValueError, OverflowError) as exc:  # --window that is not a moment, or none a window has
            print(f"refused: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(line(record))
        return EXIT_OK if record.outcome == "succeeded" else EXIT_FAILED

    return run_on_store(args.config, work)


class Progress:
    """How far a run by hand got, on ``out`` (stderr): one line redrawn in place on a terminal (a
    spinner and the count), else a line at most every ``every_s`` seconds, for logs."""

    SPIN = "|/-\\"

    def __init__(self, out: TextIO, job: str, *, every_s: float = 1.0) -> None:
        self._out, self._job, self._every_s = out, job, every_s
        self._tty = out.isatty()
        self._last = -math.inf  # the first report is written, whatever the monotonic clock reads
        self._turns = 0
        self._drawn = False
        self._lock = threading.Lock()  # a job may report from its worker thread

    def __call__(self, what: str, done: int) -> None:
        with self._lock:
            now = time.monotonic()
            if self._tty:
                self._turns += 1
                spin = self.SPIN[self._turns % len(self.SPIN)]
                self._out.write(f"\r{spin} {self._job}: {done:,} {what}")
                self._drawn = True
            elif now - self._last >= self._every_s:
                self._out.write(f"{self._job}: {done:,} {what}\n")
                self._last = now
            else:
                return
            self._out.flush()

    def done(self) -> None:
        if self._tty and self._drawn:
            self._out.write("\n")
            self._out.flush()


def _moment(text: str, tz: str) -> datetime:
    """``--window``'s START; without an offset, in the scheduler's zone."""
    from lienthong.scheduler.schedule import zone  # noqa: PLC0415 (keep `lienthong --help` fast)

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--window {text!r} is not an ISO 8601 date or time (e.g. 2026-12-01T02:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone(tz))
