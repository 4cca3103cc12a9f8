"""What the SQL backends share: the columns of each table and the conversions between records and rows.

SQLite and PostgreSQL keep the same tables with the same columns (``store.sqlite``, ``store.postgres``);
only their statements differ, in placeholders and in how many rows one statement takes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields, replace
from typing import Any

import orjson

from lienthong.model import (
    CircuitRow,
    DestinationStats,
    IngestItem,
    LedgerEntry,
    Message,
    Outcome,
    StoredEvent,
)
from lienthong.msglog.merkle import leaf_hash
from lienthong.msglog.records import LogRecord, StoredCheckpoint
from lienthong.payments.records import CallbackRecord, PaymentRecord
from lienthong.scheduler.runs import RunRecord
from lienthong.sealing import Sealer, open_plain

LEDGER_COLUMNS = (
    "dossier_code, unit_code, last_event_id, last_event_type, occurred_ms, status, procedure_code, channel, "
    "level, received_at, due_at, returned_at, fees_total, fees_paid, result_sha256, results, updated_ms"
)
LEDGER_READ = f"{LEDGER_COLUMNS}, result_signature, result_signature_note"
"""The ``dossiers`` columns a ``LedgerEntry`` is read from: the verdict on the results' signatures is
written on its own (``Ledger.record_signature``), never by an event's upsert."""
LOOKUP_COLUMNS = "request_id, at_ms, caller, official_id, purpose, subject_ref, form, outcome"
PAYMENT_COLUMNS = ", ".join(f.name for f in fields(PaymentRecord))
CALLBACK_COLUMNS = ", ".join(f.name for f in fields(CallbackRecord))
FINDING_COLUMNS = "at_ms, kind, reference, channel, transaction_id, amount, detail"
MESSAGE_FIELDS = (
    "message_id",
    "event_id",
    "destination",
    "operation",
    "dossier_code",
    "status",
    "attempts",
    "created_ms",
    "updated_ms",
    "next_attempt_ms",
    "last_error",
    "mapping",
    "mapping_hash",
)
"""The outbox columns a ``MessageView`` is made of, in its fields' order."""
ACTION_COLUMNS = "at_ms, actor, action, message_id, reason, detail"
"""The ``operator_actions`` table's columns, in ``OperatorAction``'s fields' order."""
RUN_COLUMNS = ", ".join(f.name for f in fields(RunRecord))
"""The ``runs`` table's columns, in ``RunRecord``'s fields' order."""


def event_row(item: IngestItem, now_ms: int, sealer: Sealer | None = None) -> tuple[Any, ...]:
    """An ``events`` row: the event's fields (its payload sealed when ``sealer`` is given), its messages'
    ids (JSON) and when it was received."""
    message_ids = orjson.dumps([d.message_id for d in item.deliveries]).decode()
    event = item.event
    if sealer is not None:
        event = event._replace(payload=sealer.seal(event.event_id, event.payload))
    return (*event, message_ids, now_ms)


def payment_row(payment: PaymentRecord, sealer: Sealer | None) -> list[Any]:
    """A ``payments`` row in ``PAYMENT_COLUMNS`` order, the dossier it carries (the applicant, for the
    receipt) sealed when ``sealer`` is given, with ``payment <reference>`` as additional data (with its
    space, no event id can be it: a payload and a dossier cannot stand in for each other)."""
    if sealer is not None:
        payment = replace(payment, dossier=sealer.seal(f"payment {payment.reference}", payment.dossier))
    return [getattr(payment, c) for c in PAYMENT_COLUMNS.split(", ")]


def payment_record(row: Sequence[Any], sealer: Sealer | None) -> PaymentRecord:
    """A ``payments`` row read in ``PAYMENT_COLUMNS`` order, its dossier opened."""
    payment = PaymentRecord(*row)
    opened = (sealer.open if sealer is not None else open_plain)(
        f"payment {payment.reference}", payment.dossier, what=f"payment {payment.reference}"
    )
    return replace(payment, dossier=opened)


def opener(sealer: Sealer | None) -> Callable[[str, str], str]:
    """How a backend reads a stored payload: opened with ``sealer``, or plaintext only."""
    return sealer.open if sealer is not None else open_plain


def ledger_row(entry: LedgerEntry, now_ms: int) -> tuple[Any, ...]:
    """A ``dossiers`` row in ``LEDGER_COLUMNS`` order; the result hashes as a JSON list (None: none)."""
    hashes = orjson.dumps(list(entry.result_sha256)).decode() if entry.result_sha256 else None
    return (*entry[:14], hashes, entry.results, now_ms)


def ledger_entry(row: Sequence[Any]) -> LedgerEntry:
    """A ``dossiers`` row read in ``LEDGER_READ`` order (``updated_ms``, the store's own, left out)."""
    values = [*row[:16], *row[17:]]
    values[14] = tuple(orjson.loads(values[14])) if values[14] else ()
    return LedgerEntry(*values)


def claimed(row: Sequence[Any], lease_until_ms: int, payload: dict[str, Any]) -> Message:
    """A claim's row: seq, message_id, destination, operation, dossier_code, attempts, age_from_ms,
    event_id, type, unit_code, occurred_at, payload, mapping, mapping_hash, replay_base, caller; with the
    payload already parsed (``payload``)."""
    event = StoredEvent(row[7], row[8], row[9], row[10], payload["dossier"], row[15])
    return Message(
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        event,
        row[12] or "",
        row[13] or "",
        row[14],
        lease_until_ms,
    )


def fold_stats(rows: Iterable[Sequence[Any]]) -> list[DestinationStats]:
    """Rows of (destination, status, count, oldest created_ms) as one ``DestinationStats`` each."""
    folded: dict[str, dict[str, Any]] = {}
    for destination, status, count, oldest in rows:
        entry = folded.setdefault(destination, {"pending": 0, "inflight": 0, "dead": 0, "oldest": None})
        entry[status] = count
        if status in ("pending", "inflight") and (entry["oldest"] is None or oldest < entry["oldest"]):
            entry["oldest"] = oldest
    return [
        DestinationStats(d, e["pending"], e["inflight"], e["dead"], e["oldest"])
        for d, e in sorted(folded.items())
    ]


def run_row(run: RunRecord) -> tuple[Any, ...]:
    """A ``runs`` row in ``RUN_COLUMNS`` order: counts as a JSON object, report paths as a JSON list."""
    values = [getattr(run, f.name) for f in fields(RunRecord)]
    names = [f.name for f in fields(RunRecord)]
    values[names.index("counts")] = orjson.dumps(run.counts, option=orjson.OPT_SORT_KEYS).decode()
    values[names.index("reports")] = orjson.dumps(list(run.reports)).decode()
    return tuple(values)


def run_record(row: Sequence[Any]) -> RunRecord:
    """A ``runs`` row read in ``RUN_COLUMNS`` order."""
    values = dict(zip(RUN_COLUMNS.split(", "), row, strict=True))
    values["counts"] = orjson.loads(values["counts"])
    values["reports"] = tuple(orjson.loads(values["reports"]))
    return RunRecord(**values)


def split_held(outcomes: Sequence[Outcome]) -> tuple[list[Outcome], Sequence[Outcome]]:
    """The outcomes that held a message back without an attempt (``held``: no attempt row, attempts
    unchanged), and the others."""
    if not any(o.kind == "held" for o in outcomes):
        return [], outcomes
    return [o for o in outcomes if o.kind == "held"], [o for o in outcomes if o.kind != "held"]


CIRCUIT_COLUMNS = "destination, state, open_for_ms, reopen_at_ms, probe, updated_ms"


def closed_circuit(destination: str) -> CircuitRow:
    """The row of a destination whose circuit was never opened."""
    return CircuitRow(destination, 0, 0, 0, None, 0)


def circuit_row(row: Sequence[Any]) -> CircuitRow:
    destination, state, open_for_ms, reopen_at_ms, probe, updated_ms = row
    return CircuitRow(
        str(destination), int(state), int(open_for_ms), int(reopen_at_ms), probe, int(updated_ms)
    )


CHECKPOINT_COLUMNS = "size, root, at_ms, note, frontier, timestamp, timestamped_ms"


def checkpoint_row(checkpoint: StoredCheckpoint) -> tuple[Any, ...]:
    frontier = orjson.dumps(list(checkpoint.frontier)).decode()
    return (*checkpoint[:4], frontier, checkpoint.timestamp, checkpoint.timestamped_ms)


def stored_checkpoint(row: Sequence[Any]) -> StoredCheckpoint:
    size, root, at_ms, note, frontier, timestamp, timestamped_ms = row
    return StoredCheckpoint(
        int(size),
        str(root),
        int(at_ms),
        str(note),
        tuple(orjson.loads(frontier)),
        timestamp,
        int(timestamped_ms),
    )


def data_and_leaf(record: LogRecord) -> tuple[str, str]:
    """A record's bytes as text, and its leaf hash (hex), as the SQL stores keep them."""
    data = record.data()
    return data.decode(), leaf_hash(data).hex()


class NoLog:
    """The message log switched off (``message_log.enabled: false``): nothing is kept."""

    def append(self, records: Sequence[LogRecord]) -> None:
        pass

    def size(self) -> int:
        return 0

    def read(self, start: int, limit: int) -> list[tuple[int, bytes, str]]:
        return []

    def about(self, subject: str, limit: int) -> list[tuple[int, bytes]]:
        return []

    def between(self, start_ms: int, end_ms: int, after: int, limit: int) -> list[tuple[int, bytes]]:
        return []

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        return False

    def checkpoints(self, limit: int, before_size: int | None = None) -> list[StoredCheckpoint]:
        return []

    def stamp(self, size: int, timestamp: str, timestamped_ms: int) -> None:
        pass


_TABLES = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    event_id        TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    unit_code       TEXT NOT NULL,
    dossier_code    TEXT NOT NULL,
    occurred_at     TEXT NOT NULL,
    payload_sha256  TEXT NOT NULL,
    payload         TEXT NOT NULL,
    message_ids     TEXT NOT NULL,
    received_ms     BIGINT NOT NULL,
    caller          TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS outbox (
    seq              {serial},
    message_id       TEXT NOT NULL UNIQUE,
    event_id         TEXT NOT NULL REFERENCES events(event_id),
    destination      TEXT NOT NULL,
    operation        TEXT NOT NULL,
    dossier_code     TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_ms       BIGINT NOT NULL,
    updated_ms       BIGINT NOT NULL,
    next_attempt_ms  BIGINT NOT NULL,
    last_error       TEXT,
    last_http_status INTEGER,
    mapping          TEXT,
    mapping_hash     TEXT,
    replayed_ms      BIGINT,
    replay_base      INTEGER NOT NULL DEFAULT 0,
    lease_until_ms   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_key ON outbox (destination, dossier_code, seq)
    WHERE status IN ('pending', 'inflight');
CREATE INDEX IF NOT EXISTS outbox_dead ON outbox (destination) WHERE status = 'dead';
CREATE INDEX IF NOT EXISTS outbox_leased ON outbox (lease_until_ms) WHERE status = 'inflight';
CREATE TABLE IF NOT EXISTS attempts (
    message_id   TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    started_ms   BIGINT NOT NULL,
    duration_ms  BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    error        TEXT,
    http_status  INTEGER,
    PRIMARY KEY (message_id, attempt)
);
CREATE TABLE IF NOT EXISTS mapping_versions (
    hash           TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    document       TEXT NOT NULL,
    first_seen_ms  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS replays (
    message_id     TEXT NOT NULL,
    replayed_ms    BIGINT NOT NULL,
    by_whom        TEXT NOT NULL,
    reason         TEXT NOT NULL,
    mapping_hash   TEXT,
    PRIMARY KEY (message_id, replayed_ms)
);
CREATE TABLE IF NOT EXISTS lookups (
    request_id     TEXT PRIMARY KEY,
    at_ms          BIGINT NOT NULL,
    caller         TEXT NOT NULL,
    official_id    TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    subject_ref    TEXT NOT NULL,
    form           TEXT NOT NULL,
    outcome        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    reference       TEXT PRIMARY KEY,
    dossier_code    TEXT NOT NULL,
    unit_code       TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    dossier         TEXT NOT NULL,
    pay_url         TEXT NOT NULL,
    status          TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    updated_ms      BIGINT NOT NULL,
    channel         TEXT NOT NULL DEFAULT '',
    caller          TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS payment_callbacks (
    id              {serial},
    received_ms     BIGINT NOT NULL,
    channel         TEXT NOT NULL,
    reference       TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    verdict         TEXT NOT NULL,
    status          TEXT NOT NULL,
    source          TEXT NOT NULL DEFAULT '',
    body_sha256     TEXT NOT NULL DEFAULT '',
    body_bytes      INTEGER NOT NULL DEFAULT 0,
    detail          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS payment_callbacks_reference ON payment_callbacks (reference);
CREATE TABLE IF NOT EXISTS payment_findings (
    id              {serial},
    at_ms           BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    reference       TEXT NOT NULL,
    channel         TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    detail          TEXT NOT NULL,
    UNIQUE (kind, channel, transaction_id)
);
CREATE TABLE IF NOT EXISTS dossiers (
    dossier_code     TEXT PRIMARY KEY,
    unit_code        TEXT NOT NULL,
    last_event_id    TEXT NOT NULL,
    last_event_type  TEXT NOT NULL,
    occurred_ms      BIGINT NOT NULL,
    status           TEXT,
    procedure_code   TEXT,
    channel          TEXT,
    level            INTEGER,
    received_at      TEXT,
    due_at           TEXT,
    returned_at      TEXT,
    fees_total       BIGINT,
    fees_paid        BIGINT,
    result_sha256    TEXT,
    results          INTEGER,
    updated_ms       BIGINT NOT NULL,
    result_signature TEXT,
    result_signature_note TEXT,
    result_signature_ms BIGINT
);
CREATE TABLE IF NOT EXISTS cursors (
    source      TEXT PRIMARY KEY,
    cursor      TEXT NOT NULL,
    updated_ms  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    job              TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    window_start_ms  BIGINT NOT NULL,
    window_end_ms    BIGINT NOT NULL,
    started_ms       BIGINT NOT NULL,
    outcome          TEXT NOT NULL,
    ended_ms         BIGINT,
    counts           TEXT NOT NULL DEFAULT '{}',
    reports          TEXT NOT NULL DEFAULT '[]',
    node             TEXT NOT NULL DEFAULT '',
    forced_by        TEXT,
    forced_reason    TEXT,
    detail           TEXT,
    PRIMARY KEY (run_id, attempt)
);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, window_end_ms);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_ms);
CREATE TABLE IF NOT EXISTS operator_actions (
    id          {serial},
    at_ms       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS operator_actions_message ON operator_actions (message_id);
"""


def schema(*, serial: str, log_seq: str) -> str:
    """The DDL of every table, the same on both SQL stores but for two column types: ``serial``, an
    identity filled in by the store (``INTEGER PRIMARY KEY AUTOINCREMENT`` on SQLite, ``BIGSERIAL PRIMARY
    KEY`` on PostgreSQL), and ``log_seq``, the message log's index (``shared_tables``)."""
    return _TABLES.replace("{serial}", serial) + shared_tables(log_seq)


def shared_tables(seq: str) -> str:
    """The DDL both SQL stores share (circuits, the message log), with ``seq``, the log's index column:
    ``INTEGER PRIMARY KEY`` on SQLite (the rowid itself: no second index to write), ``BIGINT PRIMARY KEY``
    on PostgreSQL."""
    return f"""
CREATE TABLE IF NOT EXISTS circuits (
    destination   TEXT PRIMARY KEY,
    state         INTEGER NOT NULL,
    open_for_ms   BIGINT NOT NULL,
    reopen_at_ms  BIGINT NOT NULL,
    probe         TEXT,
    updated_ms    BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS log_records (
    seq      {seq},
    at_ms    BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    data     TEXT NOT NULL,
    leaf     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_records_subject ON log_records (subject);
CREATE INDEX IF NOT EXISTS log_records_at ON log_records (at_ms);
CREATE TABLE IF NOT EXISTS log_checkpoints (
    size      BIGINT PRIMARY KEY,
    root      TEXT NOT NULL,
    at_ms     BIGINT NOT NULL,
    note      TEXT NOT NULL,
    frontier  TEXT NOT NULL,
    timestamp TEXT NOT NULL DEFAULT '',
    timestamped_ms BIGINT NOT NULL DEFAULT 0
);
"""
