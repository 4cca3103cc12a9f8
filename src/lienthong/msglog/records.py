"""What the message log holds: one record per thing lienthong did or was told, hashes in place of content.

Every delivery attempt, inbound payment callback, prefill look-up and operator action (replay, discard,
reveal, forced run) appends a ``LogRecord`` in the same transaction as what it records (``store.units``).
A record's bytes, the leaf of the Merkle tree (``msglog.merkle``), are its fields as one JSON array,
compact, UTF-8, in this order::

    [at_ms, kind, subject, actor, outcome, request_sha256, response_sha256, detail]

The store keeps those bytes as they were written; a third party recomputes ``SHA-256(0x00 || bytes)``
and needs no lienthong code to do so. Personal data never enters a record: a request and its answer are
there as SHA-256 hashes of the bytes on the wire (``adapters.exchanges``), a payment by its reference, a
look-up by its request id.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import itemgetter
from typing import Literal, NamedTuple, get_args

import orjson

LogKind = Literal["delivery", "callback", "lookup", "operator"]
_KINDS = frozenset(get_args(LogKind))
_first, _kind, _rest = itemgetter(0), itemgetter(1), itemgetter(slice(1, None))


class LogRecord(NamedTuple):
    at_ms: int
    kind: LogKind
    subject: str
    """What it is about: a message id (deliveries, operator actions), a payment reference (callbacks), a
    look-up's request id."""
    actor: str
    """Who: the destination and operation of a delivery, a callback's source, a look-up's caller, the
    operator."""
    outcome: str
    request_sha256: str = ""
    response_sha256: str = ""
    detail: str = ""

    def data(self) -> bytes:
        """The record's bytes: the leaf the tree hashes."""
        return orjson.dumps(list(self))

    @classmethod
    def parse(cls, data: bytes, *, exact: bool = True) -> LogRecord:
        """The record of ``data``; ValueError when it is not one this version writes (``exact``: nor
        byte for byte as it writes them; ``log verify`` leaves that to the leaf hash and the tree)."""
        try:
            fields = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"a log record is JSON: {exc}") from exc
        if not isinstance(fields, list) or len(fields) != len(cls._fields):
            raise ValueError(f"a log record is a JSON array of {len(cls._fields)} fields")
        at_ms, *texts = fields
        if not isinstance(at_ms, int) or not all(isinstance(t, str) for t in texts):
            raise ValueError("a log record's first field is a number, the others text")
        if texts[0] not in _KINDS:
            raise ValueError(f"not a kind of log record: {texts[0]!r}")
        record = cls(at_ms, *texts)
        if exact and record.data() != data:
            raise ValueError("the log record's bytes are not as lienthong writes them")
        return record

    @classmethod
    def all_well_formed(cls, datas: Sequence[bytes]) -> bool:
        """Whether ``parse(data, exact=False)`` takes every one of ``datas``, checked in bulk: each check
        is one pass in C over the page (``map``), where ``parse`` costs Python steps a record and was most
        of ``log verify``'s time. False says only that some record may be bad: ``parse`` each to name it."""
        try:
            fields = list(map(orjson.loads, datas))
        except orjson.JSONDecodeError:
            return False
        return not (
            set(map(type, fields)) - {list}
            or set(map(len, fields)) - {len(cls._fields)}
            or set(map(type, map(_first, fields))) - {int}
            or set(map(type, chain.from_iterable(map(_rest, fields)))) - {str}
            or set(map(_kind, fields)) - _KINDS
        )


class StoredCheckpoint(NamedTuple):
    """A signed tree head as the store keeps it: the tree's ``size`` and ``root`` (hex), when, the signed
    note (C2SP), and the frontier (hex hashes of the perfect subtrees, largest first) that lets the next
    checkpoint extend the tree without reading it all again."""

    size: int
    root: str
    at_ms: int
    note: str
    frontier: tuple[str, ...]
    timestamp: str = ""
    """The RFC 3161 timestamp of the note (the TSA's answer, base64), when one was had."""
    timestamped_ms: int = 0
    """The time in that timestamp (0: none)."""
