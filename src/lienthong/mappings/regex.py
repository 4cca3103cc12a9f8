"""Regular expressions on input from outside run in linear time: RE2 (google-re2), not Python's ``re``.

A spec's or a route's ``matches`` and the ``regex_extract`` function run on every event, on values the
province (or whoever reaches the API) chose. Python's backtracking ``re`` takes exponential time on a
pattern such as ``(a+)+$`` against ``aaaa…!``: a hostile review froze a node for 12 s with 28 characters,
each more doubling it. RE2 guarantees time linear in the input; it has Python's syntax without lookaround
and backreferences, which it refuses when the spec or config loads.
"""

from __future__ import annotations

from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # its own stderr line for a bad pattern: ours names the spec's line instead

SYNTAX = "RE2 syntax: Python's, without lookaround or backreferences, so that matching takes linear time"


def compile_linear(pattern: str, *, what: str) -> Any:
    """``pattern`` compiled by RE2; ValueError naming ``what`` and why, for one RE2 does not take."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"{what}: bad regular expression {pattern!r}: {reason} ({SYNTAX})") from exc
