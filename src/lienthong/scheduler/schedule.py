"""Schedule maths: a job's cron expression, the windows between its fire times, and what was missed.

Pure functions of "now", as arq keeps ``cron.py:next_cron``: nothing here reads a clock or does I/O, so
a test gives any instant. APScheduler's ``CronTrigger`` does the crontab fields and the time zone; this
module adds what a reconciliation needs on top of "the next fire time":

- the *window* a run covers: [the previous fire time, this fire time);
- its deterministic run id ``job:window``, the window's end in the schedule's zone to the minute, e.g.
  ``bank-reconcile:2026-12-01T02:00+07:00``: the same on every node and after every restart;
- the previous fire time (APScheduler 3 only answers "next");
- the windows missed since the last recorded run: the latest runs once, the older ones are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

ZONE = "Asia/Ho_Chi_Minh"
MAX_SKIPPED = 100
"""Missed windows recorded one by one as skipped, newest first; older ones are only counted."""

_TICK = timedelta(microseconds=1)
_FIRST_LOOK_BACK = timedelta(minutes=1)
_LONGEST_LOOK_BACK = timedelta(days=366 * 9)  # 29 February comes back after eight years across 2100


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ValueError when there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. {ZONE})") from exc


def parse_cron(expression: str, tz: tzinfo | str = ZONE) -> CronTrigger:
    """A crontab expression (minute hour day month day-of-week) as a trigger in ``tz``.

    Raises ValueError saying what is wrong. Days of the week must be names (mon-fri): APScheduler 3 reads
    0 as Monday where cron reads it as Sunday, so a number would silently run on the wrong day.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has 5 fields (minute hour day month weekday), got {len(fields)}")
    if re.search(r"\d", re.sub(r"/\d+", "", fields[4])):
        raise ValueError(
            f"write the day of the week as names (mon-fri, sun), not {fields[4]!r}: APScheduler 3 counts"
            " 0 as Monday, cron as Sunday"
        )
    try:
        trigger = CronTrigger.from_crontab(expression, timezone=zone(tz) if isinstance(tz, str) else tz)
    except ValueError as exc:
        raise ValueError(f"not a cron expression: {exc}") from exc
    if trigger.get_next_fire_time(None, datetime(2000, 1, 1, tzinfo=trigger.timezone)) is None:
        raise ValueError(f"{expression!r} never fires")
    return trigger


@dataclass(frozen=True)
class Window:
    """What one run covers: [start, end), both fire times of the job's schedule, in its zone."""

    job: str
    start: datetime
    end: datetime

    @property
    def run_id(self) -> str:
        return f"{self.job}:{self.end.isoformat(timespec='minutes')}"

    @property
    def start_ms(self) -> int:
        return round(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return round(self.end.timestamp() * 1000)


@dataclass(frozen=True)
class Catchup:
    """What to do about windows that ended since the last one handled: run ``run`` (the latest) once;
    record ``skipped`` (the ones before it, newest first, at most MAX_SKIPPED); ``uncounted``: more were
    missed before those."""

    run: Window
    skipped: tuple[Window, ...] = ()
    uncounted: bool = False


class Schedule:
    """One job's cron expression in one time zone. Every method is a pure function of its arguments."""

    def __init__(self, job: str, cron: str, tz: str = ZONE) -> None:
        self.job = job
        self.cron = cron
        self.zone = zone(tz)
        self._trigger = parse_cron(cron, self.zone)

    def next_fire(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after`` (an aware datetime)."""
        return self._first_from(after + _TICK)

    def fire_at_or_before(self, moment: datetime) -> datetime:
        """The latest fire time at or before ``moment``: look back 1 minute, then 2, 4… until one is found,
        then step forward to the last one (a handful of trigger calls, however sparse the schedule)."""
        back = _FIRST_LOOK_BACK
        while back <= _LONGEST_LOOK_BACK:
            fire = self._first_from(moment - back)
            if fire <= moment:
                while (following := self.next_fire(fire)) <= moment:
                    fire = following
                return fire
            back *= 2
        raise ValueError(f"{self.cron!r} has not fired in the nine years before {moment.isoformat()}")

    def window_ending(self, end: datetime) -> Window:
        """The window whose run fires at ``end`` (a fire time)."""
        return Window(self.job, self.fire_at_or_before(end - _TICK), end.astimezone(self.zone))

    def window_containing(self, moment: datetime) -> Window:
        """The window ``moment`` falls in: from the fire at or before it to the next one."""
        start = self.fire_at_or_before(moment)
        return Window(self.job, start, self.next_fire(start))

    def latest_window(self, now: datetime) -> Window:
        """The latest complete window at ``now``: the one that ends at the last fire at or before it."""
        return self.window_ending(self.fire_at_or_before(now))

    def missed(self, last_end: datetime, now: datetime) -> Catchup | None:
        """Windows that ended after ``last_end`` (the end of the last window run or recorded) and by
        ``now``: None when there is none; else the latest runs, once, and the older ones are skipped."""
        latest = self.fire_at_or_before(now)
        if latest <= last_end:
            return None
        run = self.window_ending(latest)
        skipped: list[Window] = []
        end = run.start
        while end > last_end and len(skipped) < MAX_SKIPPED:
            window = self.window_ending(end)
            skipped.append(window)
            end = window.start
        return Catchup(run, tuple(skipped), uncounted=end > last_end)

    def _first_from(self, moment: datetime) -> datetime:
        fire: datetime | None = self._trigger.get_next_fire_time(None, moment.astimezone(self.zone))
        if fire is None:  # from_crontab has no year nor end date: every expression that fires once recurs
            raise ValueError(f"{self.cron!r} never fires after {moment.isoformat()}")
        return fire
