"""The one clock: seconds since the epoch, like ``time.time``. The composition root (``app.build``) takes
one and hands it to everything that stamps or schedules, so a test controls all of lienthong's time."""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]


def now_ms(clock: Clock) -> int:
    """``clock`` in whole milliseconds, as the store keeps times."""
    return int(clock() * 1000)
