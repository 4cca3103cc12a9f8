"""Date-time patterns as integrators write them (``yyyyMMddHHmmss``, ``dd/MM/yyyy``), compiled once.

The portal and most Vietnamese systems describe formats in Java's letters, so specs use those, not
``strftime``'s. A pattern is checked when the spec loads: an unknown letter is a load error.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ISO = "iso8601"
# Vietnam has kept UTC+7 without daylight saving since 1975: a fixed offset is exact.
VIETNAM = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")
# Longest first, so that "yyyy" is not read as two "yy".
_TOKENS = {
    "yyyy": "%Y",
    "yy": "%y",
    "MM": "%m",
    "dd": "%d",
    "HH": "%H",
    "mm": "%M",
    "ss": "%S",
    "SSS": "%f",
    "XXX": "%z",
    "Z": "%z",
}
_TOKEN = re.compile(r"'[^']*'|yyyy|yy|MM|dd|HH|mm|ss|SSS|XXX|Z|[A-Za-z]+|[^A-Za-z']+")
_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{2}):?(\d{2})$")
# Private-use characters: strftime copies them through (a NUL would end its output).
_MARKERS = {"SSS": "\ue000", "XXX": "\ue001"}
SUPPORTED = ", ".join([ISO, *_TOKENS])


def zone(name: str) -> tzinfo:
    """A time zone by IANA name (``Asia/Ho_Chi_Minh``), ``UTC``, or a fixed offset (``+07:00``)."""
    if name == "UTC":
        return UTC
    match = _OFFSET.match(name)
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Asia/Ho_Chi_Minh, or +07:00)"
        ) from exc


def _translate(pattern: str, *, parsing: bool) -> str:
    """``pattern`` as a strftime/strptime string. For writing, SSS and XXX become markers that
    ``formatter`` fills in: strftime has no milliseconds and writes offsets without a colon."""
    out: list[str] = []
    for token in _TOKEN.findall(pattern):
        if token.startswith("'"):
            out.append(token[1:-1].replace("%", "%%") or "'")
        elif token in _TOKENS:
            out.append(_TOKENS[token] if parsing or token not in _MARKERS else _MARKERS[token])
        elif token[0].isalpha():
            raise ValueError(f"unknown date pattern letters {token!r} in {pattern!r} (known: {SUPPORTED})")
        else:
            out.append(token.replace("%", "%%"))
    return "".join(out)


def formatter(pattern: str) -> Callable[[datetime], str]:
    """A function writing a datetime in ``pattern``."""
    if pattern == ISO:
        return datetime.isoformat
    fmt = _translate(pattern, parsing=False)
    if _MARKERS["SSS"] not in fmt and _MARKERS["XXX"] not in fmt:
        return lambda moment: moment.strftime(fmt)

    def write(moment: datetime) -> str:
        text = moment.strftime(fmt).replace(_MARKERS["SSS"], f"{moment.microsecond // 1000:03d}")
        if _MARKERS["XXX"] in text:
            offset = moment.strftime("%z")
            text = text.replace(_MARKERS["XXX"], f"{offset[:3]}:{offset[3:]}" if offset else "")
        return text

    return write


# Where each pattern token sits in ISO text laid out as yyyy-MM-ddTHH:mm:ss±HH:MM (25 characters).
_ISO_SLICES = {
    "yyyy": slice(0, 4),
    "yy": slice(2, 4),
    "MM": slice(5, 7),
    "dd": slice(8, 10),
    "HH": slice(11, 13),
    "mm": slice(14, 16),
    "ss": slice(17, 19),
}


def iso_copier(pattern: str) -> Callable[[str], str] | None:
    """For patterns of date and time fields only: a function writing ``pattern`` from ISO text laid out
    as ``yyyy-MM-ddTHH:mm:ss±HH:MM`` by copying its digits. strftime costs over a microsecond a call here,
    and most dates arrive already in the zone they are written in. None for other patterns."""
    if pattern == ISO:
        return None
    template: list[str] = []
    slices: list[slice] = []
    for token in _TOKEN.findall(pattern):
        if token in _ISO_SLICES:
            template.append("%s")
            slices.append(_ISO_SLICES[token])
        elif token.startswith("'") or not token[0].isalpha():
            template.append((token[1:-1] or "'" if token.startswith("'") else token).replace("%", "%%"))
        else:
            return None
    if not slices:
        return None
    fmt = "".join(template)
    get = operator.itemgetter(*slices)
    if len(slices) == 1:
        return lambda text: fmt % (get(text),)
    return lambda text: fmt % get(text)


def iso_layout(text: str) -> bool:
    """Whether ISO text (already parsed) is laid out as ``yyyy-MM-ddTHH:mm:ss±HH:MM``."""
    return (
        len(text) == 25
        and text[10] == "T"
        and text[4] == text[7] == "-"
        and text[13] == text[16] == ":"
        and text[19] in "+-"
    )


def parser(pattern: str, tz: tzinfo) -> Callable[[str], datetime]:
    """A function reading text in ``pattern``; a date-time without an offset is taken to be in ``tz``."""
    fmt = None if pattern == ISO else _translate(pattern, parsing=True)

    def read(text: str) -> datetime:
        moment = datetime.fromisoformat(text) if fmt is None else datetime.strptime(text, fmt)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)

    return read
