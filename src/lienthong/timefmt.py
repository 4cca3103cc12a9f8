"""How the command line writes a moment: ISO 8601 with Vietnam's offset, ``2026-11-23T09:05:00+07:00``.

One format everywhere a person or a script reads times (``dlq``, ``payments``, ``runs``, log lines), so
that one pattern parses them all and nobody has to ask which zone a time is in (decision 0015). The
store keeps milliseconds since the epoch; these functions only write them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

DISPLAY_ZONE = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")
"""Vietnam's time, +07:00 all year (no daylight saving since 1975): what the province's staff read."""

PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3})?[+-]\d{2}:\d{2}")
"""Every moment the command line prints matches this (milliseconds only in log lines)."""

_NOT_MOMENTS = frozenset({"duration_ms"})  # ``*_ms`` fields that are lengths of time, not moments


def moment(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 in Vietnam's time, to the second."""
    return datetime.fromtimestamp(ms / 1000, DISPLAY_ZONE).isoformat(timespec="seconds")


def moment_precise(seconds: float) -> str:
    """Seconds since the epoch (as ``time.time()`` and log records give them), to the millisecond."""
    return datetime.fromtimestamp(seconds, DISPLAY_ZONE).isoformat(timespec="milliseconds")


def with_moments(value: Any) -> Any:
    """``value`` (a record as JSON: dicts, lists) with a text twin beside each moment in milliseconds:
    ``updated_ms: 1764..`` gains ``updated: "2026-...+07:00"``; a zero or missing moment gains null."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key] = with_moments(item)
            name = str(key)
            if name.endswith("_ms") and name not in _NOT_MOMENTS and (item is None or isinstance(item, int)):
                out.setdefault(name.removesuffix("_ms"), moment(item) if item else None)
        return out
    if isinstance(value, list | tuple):
        return [with_moments(item) for item in value]
    return value
