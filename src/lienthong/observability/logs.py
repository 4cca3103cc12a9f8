"""Logs an operator can follow: JSON lines (python-json-logger) or readable text, the delivery's ids on
every line about it, the inbound request's id, and personal data masked in every line of every logger.

- ``configure(level, form)`` sets the root logger once, for lienthong's loggers and third parties'
  (uvicorn, httpx, zeep) alike: one handler, one format, one mask.
- Lines about a delivery carry ``extra=delivery_fields(message)``: message id, event id, dossier code,
  destination, operation, so one dossier can be followed from ingest to delivery with a search.
- ``request_id`` is a context variable the API sets from ``X-Request-Id`` (or makes); every line logged
  while a request is handled carries it, and the ingest line ties it to the message ids it made.
- ``Redact`` masks, in the formatted message and the extra fields: values of keys and XML elements that
  name personal data (ID numbers, names, birth dates, addresses, phones, e-mails), in JSON, Python reprs
  and XML (zeep's debug log prints whole SOAP answers of the population database), and any run of 9 or 12
  digits (an ID card or citizen number) wherever it is.
"""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
import sys
from collections.abc import Mapping
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

from lienthong.model import Message
from lienthong.timefmt import moment_precise

LogFormat = Literal["json", "text", "auto"]
MASK = "***"

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("lienthong_request_id", default=None)

PERSONAL_NAMES = (
    # the reference dossier format and the e-forms
    "full_name", "name", "id_number", "birth_date", "date_of_birth", "phone", "email", "address",
    "applicant_name", "payer_name", "buyer_name",
    # the population database (CSDLQG về dân cư) and the national systems
    "SoDinhDanh", "SoCMND", "HoVaTen", "Ho", "ChuDem", "Ten", "NgayThangNamSinh", "NgayThangNam",
    "NgaySinh", "ThuongTru", "NoiOHienTai", "QueQuan", "ChiTiet", "SoSoHoKhau", "ChuHoSo", "SoDienThoai",
    "Email", "DiaChi", "HoTenNguoiNop", "ID_local", "ID_QG",
)  # fmt: skip
"""Keys and XML elements whose values are personal data, as lienthong's formats and its peers name them."""

_NAMES = "|".join(sorted(map(re.escape, PERSONAL_NAMES), key=len, reverse=True))
_XML = re.compile(rf"(<(?:[\w.-]+:)?(?:{_NAMES})(?:\s[^>]*)?>)([^<]*)(</)", re.IGNORECASE)
# Each character of a quoted value is read one way only (an escape, or anything but the quote and a
# backslash): with ``(?:\\.|(?!\2).)*`` a run of backslashes had exponentially many readings (1.7 s for 34).
_QUOTED = re.compile(
    rf"""(["'](?:{_NAMES})["']\s*[:=]\s*)(?:"((?:\\.|[^"\\])*)"|'((?:\\.|[^'\\])*)')""", re.IGNORECASE
)
_BARE = re.compile(rf"""\b((?:{_NAMES})=)([^\s,;&)]+)""", re.IGNORECASE)
# Bounded by digits only: an id touching a letter, "_" or "." ("SoDinhDanh046090000123", "cd_…",
# "/v1/citizens/046090000123.json") is still an id (found in review).
# lienthong's own identifiers stay whole: hex has runs of decimal digits, and a message id logged as
# "m-0661b9a3044b***b61af" cannot be followed through the log (found when two tests failed as the clock and
# the counter lined up). Only the exact shapes lienthong makes, in lower case: a message id (m- and 26 hex),
# a look-up's (lk- and 32), a request id made here (r- and 32), a SHA-256 digest (64). A number a caller
# glues to a UUID, a longer hex run or "CCCD" is none of these, and is masked (found in review).
_OWN_ID = r"\b(?:m-[0-9a-f]{26}|lk-[0-9a-f]{32}|r-[0-9a-f]{32}|[0-9a-f]{64})\b"
_ID_NUMBER = re.compile(rf"({_OWN_ID})|(?<!\d)(?:\d{{12}}|\d{{9}})(?!\d)")


def _masked_quote(found: re.Match[str]) -> str:
    quote = '"' if found.group(2) is not None else "'"
    return f"{found.group(1)}{quote}{MASK}{quote}"


def redact(text: str) -> str:
    """``text`` with personal data masked (see the module's docstring)."""
    text = _XML.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    text = _QUOTED.sub(_masked_quote, text)
    text = _BARE.sub(lambda m: f"{m.group(1)}{MASK}", text)
    return _ID_NUMBER.sub(_unless_own, text)


def _unless_own(found: re.Match[str]) -> str:
    return found.group(1) or MASK


def new_request_id() -> str:
    """An id for a request that came without one: r- and 32 hex, a shape the log's mask leaves whole."""
    return f"r-{secrets.token_hex(16)}"


_ONE_LINE = str.maketrans({"\n": "\\n", "\r": "\\r"})
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
"""A LogRecord's own attributes; any other is an extra field a caller added (``extra={...}``)."""


class Redact(logging.Filter):
    """On the handler, so that it sees every logger's records: the message formatted and masked once."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a third party's bad format string: keep what it tried to say
            message = f"{record.msg!r} {record.args!r}"
        # One record, one line: a line break in what a peer answered or a caller sent (a dead letter's
        # error, a callback's reference) would otherwise print a forged line in a text log.
        record.msg, record.args = redact(message).translate(_ONE_LINE), None
        # Extra fields are printed too (the JSON log's keys, the text log's context): masked alike. An
        # unknown callback's reference may be a citizen's ID number.
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value).translate(_ONE_LINE))
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        requested = request_id.get()
        if requested is not None and not hasattr(record, "request_id"):
            record.request_id = requested
        return True


_CONTEXT = ("request_id", "message_id", "event_id", "dossier_code", "destination", "operation")


class _Text(logging.Formatter):
    """``time LEVEL logger: message [key=value …]``, the time as the command line prints one."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return moment_precise(record.created)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{k}={getattr(record, k)}" for k in _CONTEXT if getattr(record, k, None))
        return f"{line} [{context}]" if context else line


class _Json(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return moment_precise(record.created)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is written, not when the handler was made."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure(level: str | int = "INFO", form: LogFormat = "auto") -> None:
    """Send every logger's lines to stderr, in ``form`` (``auto``: text on a terminal, else JSON)."""
    if form == "auto":
        form = "text" if sys.stderr.isatty() else "json"
    handler = _Stderr()
    handler.addFilter(Redact())
    if form == "json":
        handler.setFormatter(
            _Json(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(_Text("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))  # a line per request is noise


def delivery_fields(message: Message) -> dict[str, Any]:
    """The ``extra`` of a line about ``message``: what an operator searches for."""
    return {
        "message_id": message.message_id,
        "event_id": message.event.event_id,
        "dossier_code": message.dossier_code,
        "destination": message.destination,
        "operation": message.operation,
    }


def fields(**values: Any) -> Mapping[str, Any]:
    """``extra`` for other lines, without the empty values."""
    return {k: v for k, v in values.items() if v not in (None, "")}


_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
_HEADER = b"x-request-id"


class RequestId:
    """ASGI middleware: the request's ``X-Request-Id`` (a safe one of at most 128 characters, else one
    made here) set as ``request_id`` while the request is handled, and sent back on the answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == _HEADER), b"")
        value = given if _REQUEST_ID.fullmatch(given) else new_request_id().encode()
        token = request_id.set(value.decode("ascii"))

        async def answer(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (_HEADER, value)]
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            request_id.reset(token)
