"""Inbound JSON: orjson's decoder, refusing what orjson would later fail to encode or has silently changed.

orjson decodes 1,024 levels of nesting but encodes only 254: a dossier nested 300 deep was accepted, then
failed with a plain-text 500 when its payload was written. And it decodes an integer beyond 64 bits as a
float: 2**64 was stored as 1.8446744073709552e19. So, once, at decoding:

- ``encode_event`` writes each event's payload (keys sorted, as the store keeps it) and refuses an event
  nested deeper than ``MAX_DEPTH`` levels: orjson refuses past 254 levels itself, and an event with more
  than MAX_DEPTH opening brackets in its payload (in strings too) is walked to be sure. The margin below 254
  keeps what mappings build from a dossier encodable.
- ``refuse_wide_integers``: an integer outside orjson's range (-2**63 to 2**64-1) takes 19 digits or more;
  only a body with such a run of digits after ":", "," or "[" is decoded again, by the standard library,
  which keeps integers exact, to find one.

Both raise InvalidEvent naming the path: the sender can send the value as a string instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson

from lienthong.errors import InvalidEvent

MAX_DEPTH = 64
"""Levels of objects and arrays in one event, the event itself being level 1 and its dossier level 2."""
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
"""The integers orjson keeps exact; it decodes wider ones as floats."""

# A wide integer is 19 digits or more right after ":", "," or "[" (spaces and a minus sign between):
# -9223372036854775809, the first below the range, has 19. Digits in strings (hashes, ids) rarely follow.
_NUMBER_STARTS = bytes(
    ord("0") if chr(byte) in "0123456789" else ord("#") if chr(byte) in ":,[" else ord(".")
    for byte in range(256)
)
_BETWEEN = b" \t\r\n-"
_WIDE_NUMBER = b"#" + b"0" * 19


def decode(body: bytes) -> Any:
    """The JSON value of ``body``; raises InvalidEvent (``malformed``) when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"malformed JSON: {exc}", malformed=True) from exc


def encode_event(raw: Any, path: str) -> bytes:
    """``raw`` as JSON with its keys sorted. Raises InvalidEvent when it nests deeper than MAX_DEPTH
    levels, naming the field of the event at ``path`` (``""`` or ``events[3]``) that does."""
    try:
        payload = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # its recursion limit: nothing else fails on decoded JSON
        raise _too_deep(raw, path) from exc
    # Nesting needs as many opening brackets: most events have far fewer, and are not walked.
    if payload.count(b"{") + payload.count(b"[") > MAX_DEPTH and _deeper_than(raw, MAX_DEPTH):
        raise _too_deep(raw, path)
    # orjson's answer keeps the buffer it grew (measured: 8 KiB for a 1.2 KB event, 32 KiB for 4 KB) for as
    # long as it lives, and a payload lives until the store has it: keep a copy of the right size instead.
    return bytes(memoryview(payload))


def _too_deep(raw: Any, path: str) -> InvalidEvent:
    message = f"objects and arrays are nested deeper than {MAX_DEPTH} levels in one event"
    return InvalidEvent(message, path=_deep_field(raw, path))


def _deep_field(raw: Any, path: str) -> str:
    if isinstance(raw, dict):
        for key, value in raw.items():
            if _deeper_than(value, MAX_DEPTH - 1):
                return f"{path}.{key}" if path else str(key)
    return path


def _deeper_than(value: Any, levels: int) -> bool:
    """Whether ``value`` holds objects and arrays more than ``levels`` levels deep (itself counting)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, level = stack.pop()
        if level > levels:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return False


def refuse_wide_integers(body: bytes) -> None:
    """Raise InvalidEvent naming the first integer in ``body`` that orjson did not keep exact.

    Call it once the body's depth is known to be bounded: the standard library decodes recursively.
    """
    if _WIDE_NUMBER not in body.translate(_NUMBER_STARTS, _BETWEEN):
        return
    wide = next(_wide_integers(json.loads(body), ()), None)
    if wide is not None:
        raise InvalidEvent(
            f"integers must lie within 64 bits ({INT_MIN} to {INT_MAX}); send larger ones as strings",
            path=format_path(wide),
        )


def _wide_integers(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT_MIN <= value <= INT_MAX:
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _wide_integers(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _wide_integers(item, (*path, index))


def format_path(parts: tuple[str | int, ...]) -> str:
    """``("events", 0, "dossier", "n")`` as ``events[0].dossier.n``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
