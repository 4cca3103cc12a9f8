"""The embedded default store: SQLite in WAL mode.

The SQL is kept portable (``ON CONFLICT``, ``RETURNING``, partial indexes, savepoints all exist in
PostgreSQL); only the DDL's key types and the placeholder style differ between dialects.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from lienthong.bus.ledger import LedgerEntry
from lienthong.bus.store import (
    AttemptView,
    ClaimedDelivery,
    DestinationStats,
    IngestItem,
    IngestResult,
    MessageView,
    Outcome,
    StoredEvent,
)
from lienthong.errors import IdempotencyConflict, StoreError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    event_id        TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    unit_code       TEXT NOT NULL,
    dossier_code    TEXT NOT NULL,
    occurred_at     TEXT NOT NULL,
    payload_sha256  TEXT NOT NULL,
    payload         TEXT NOT NULL,
    received_ms     BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
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
    last_http_status INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_key ON outbox (destination, dossier_code, seq)
    WHERE status IN ('pending', 'inflight');
CREATE INDEX IF NOT EXISTS outbox_open ON outbox (status, destination) WHERE status <> 'delivered';
CREATE INDEX IF NOT EXISTS outbox_event ON outbox (event_id);
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
    updated_ms       BIGINT NOT NULL
);
"""

_LEDGER_COLUMNS = (
    "dossier_code, unit_code, last_event_id, last_event_type, occurred_ms, status, procedure_code, channel, "
    "level, received_at, due_at, returned_at, fees_total, fees_paid, result_sha256, updated_ms"
)
# Later events win; an event older than what the ledger reflects changes nothing. Fields an event does not
# carry keep their previous value.
_LEDGER_UPSERT = f"""
INSERT INTO dossiers ({_LEDGER_COLUMNS}) VALUES ({", ".join("?" * 16)})
ON CONFLICT (dossier_code) DO UPDATE SET
    unit_code = excluded.unit_code,
    last_event_id = excluded.last_event_id,
    last_event_type = excluded.last_event_type,
    occurred_ms = excluded.occurred_ms,
    status = COALESCE(excluded.status, dossiers.status),
    procedure_code = COALESCE(excluded.procedure_code, dossiers.procedure_code),
    channel = COALESCE(excluded.channel, dossiers.channel),
    level = COALESCE(excluded.level, dossiers.level),
    received_at = COALESCE(excluded.received_at, dossiers.received_at),
    due_at = COALESCE(excluded.due_at, dossiers.due_at),
    returned_at = COALESCE(excluded.returned_at, dossiers.returned_at),
    fees_total = COALESCE(excluded.fees_total, dossiers.fees_total),
    fees_paid = COALESCE(excluded.fees_paid, dossiers.fees_paid),
    result_sha256 = COALESCE(excluded.result_sha256, dossiers.result_sha256),
    updated_ms = excluded.updated_ms
WHERE excluded.occurred_ms >= dossiers.occurred_ms
"""

_MESSAGE_FIELDS = (
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
)

_CLAIM = """
SELECT o.seq, o.message_id, o.destination, o.operation, o.dossier_code, o.attempts, o.created_ms,
       e.event_id, e.type, e.unit_code, e.occurred_at, e.payload
FROM outbox o JOIN events e ON e.event_id = o.event_id
WHERE o.status = 'pending' AND o.next_attempt_ms <= ?
  AND NOT EXISTS (
      SELECT 1 FROM outbox p
      WHERE p.destination = o.destination AND p.dossier_code = o.dossier_code
        AND p.status IN ('pending', 'inflight') AND p.seq < o.seq)
ORDER BY o.seq
LIMIT ?
"""


class SqliteOutbox:
    """OutboxStore on one SQLite connection. Use it from one thread: the committer's."""

    def __init__(self, path: str | Path, *, synchronous: str = "full") -> None:
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=True)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA busy_timeout = 5000")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite store at {path}: {exc}") from exc

    def _migrate(self) -> None:
        self._db.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nCOMMIT;")
        row = self._db.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif row[0] > SCHEMA_VERSION:
            raise StoreError(
                f"the store's schema version is {row[0]}, newer than this lienthong knows"
                f" ({SCHEMA_VERSION}); upgrade lienthong"
            )

    # -- transactions (driven by the committer) --------------------------------------------------------
    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def savepoint(self) -> None:
        self._db.execute("SAVEPOINT op")

    def release_savepoint(self) -> None:
        self._db.execute("RELEASE SAVEPOINT op")

    def rollback_to_savepoint(self) -> None:
        self._db.execute("ROLLBACK TO SAVEPOINT op")
        self._db.execute("RELEASE SAVEPOINT op")

    def close(self) -> None:
        self._db.close()

    # -- operations ------------------------------------------------------------------------------------
    def recover(self) -> int:
        cursor = self._db.execute("UPDATE outbox SET status = 'pending' WHERE status = 'inflight'")
        return cursor.rowcount

    def ingest(self, items: list[IngestItem], now_ms: int) -> list[IngestResult]:
        results = [self._ingest_one(item, now_ms) for item in items]
        fresh = [item for item, result in zip(items, results, strict=True) if not result.duplicate]
        self._db.executemany(_LEDGER_UPSERT, [_ledger_row(item.ledger, now_ms) for item in fresh])
        return results

    def _ingest_one(self, item: IngestItem, now_ms: int) -> IngestResult:
        event = item.event.event
        inserted = self._db.execute(
            "INSERT INTO events (event_id, type, unit_code, dossier_code, occurred_at, payload_sha256,"
            " payload, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            (
                event.event_id,
                event.type,
                event.unit_code,
                item.event.dossier_code,
                event.occurred_at.isoformat(),
                item.event.payload_sha256,
                item.event.payload.decode(),
                now_ms,
            ),
        ).rowcount
        if inserted == 0:
            return self._existing(event.event_id, item.event.payload_sha256)
        stamps = (now_ms, now_ms, now_ms)  # created, updated, next attempt
        self._db.executemany(
            "INSERT INTO outbox (message_id, event_id, destination, operation, dossier_code, status,"
            " created_ms, updated_ms, next_attempt_ms) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
            [
                (d.message_id, event.event_id, d.destination, d.operation, item.event.dossier_code, *stamps)
                for d in item.deliveries
            ],
        )
        return IngestResult(event.event_id, tuple(d.message_id for d in item.deliveries), duplicate=False)

    def _existing(self, event_id: str, payload_sha256: str) -> IngestResult:
        (stored_sha,) = self._db.execute(
            "SELECT payload_sha256 FROM events WHERE event_id = ?", (event_id,)
        ).fetchone()
        if stored_sha != payload_sha256:
            raise IdempotencyConflict(event_id)
        rows = self._db.execute("SELECT message_id FROM outbox WHERE event_id = ? ORDER BY seq", (event_id,))
        return IngestResult(event_id, tuple(r[0] for r in rows), duplicate=True)

    def claim(self, now_ms: int, limit: int) -> list[ClaimedDelivery]:
        rows = self._db.execute(_CLAIM, (now_ms, limit)).fetchall()
        if not rows:
            return []
        self._db.executemany(
            "UPDATE outbox SET status = 'inflight', updated_ms = ? WHERE seq = ?",
            [(now_ms, r[0]) for r in rows],
        )
        return [_claimed(row) for row in rows]

    def complete(self, outcomes: list[Outcome]) -> None:
        self._db.executemany(
            "UPDATE outbox SET status = ?, attempts = ?, updated_ms = ?, next_attempt_ms = ?, last_error = ?,"
            " last_http_status = ? WHERE message_id = ?",
            [
                (
                    "pending" if o.kind == "retry" else o.kind,
                    o.attempt,
                    o.finished_ms,
                    o.next_attempt_ms if o.next_attempt_ms is not None else o.finished_ms,
                    o.error,
                    o.http_status,
                    o.message_id,
                )
                for o in outcomes
            ],
        )
        self._db.executemany(
            "INSERT INTO attempts (message_id, attempt, started_ms, duration_ms, outcome, error, http_status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id, attempt) DO NOTHING",
            [
                (o.message_id, o.attempt, o.started_ms, o.finished_ms - o.started_ms, o.kind, *o.detail)
                for o in outcomes
            ],
        )

    def message(self, message_id: str) -> MessageView | None:
        row = self._db.execute(
            f"SELECT {', '.join(_MESSAGE_FIELDS)} FROM outbox WHERE message_id = ?", (message_id,)
        ).fetchone()
        if row is None:
            return None
        history = self._db.execute(
            "SELECT attempt, started_ms, duration_ms, outcome, error, http_status FROM attempts"
            " WHERE message_id = ? ORDER BY attempt",
            (message_id,),
        ).fetchall()
        fields = dict(zip(_MESSAGE_FIELDS, row, strict=True))
        return MessageView(**fields, history=tuple(AttemptView(*h) for h in history))

    def stats(self) -> list[DestinationStats]:
        rows = self._db.execute(
            "SELECT destination, status, COUNT(*), MIN(created_ms) FROM outbox"
            " WHERE status <> 'delivered' GROUP BY destination, status"
        ).fetchall()
        return _fold_stats(rows)

    def ledger_entry(self, dossier_code: str) -> LedgerEntry | None:
        row = self._db.execute(
            f"SELECT {_LEDGER_COLUMNS} FROM dossiers WHERE dossier_code = ?", (dossier_code,)
        ).fetchone()
        if row is None:
            return None
        values = list(row[:-1])
        values[14] = tuple(orjson.loads(values[14])) if values[14] else ()
        return LedgerEntry(*values)


def _ledger_row(entry: LedgerEntry, now_ms: int) -> tuple[Any, ...]:
    results = orjson.dumps(list(entry.result_sha256)).decode() if entry.result_sha256 else None
    return (
        entry.dossier_code,
        entry.unit_code,
        entry.last_event_id,
        entry.last_event_type,
        entry.occurred_ms,
        entry.status,
        entry.procedure_code,
        entry.channel,
        entry.level,
        entry.received_at,
        entry.due_at,
        entry.returned_at,
        entry.fees_total,
        entry.fees_paid,
        results,
        now_ms,
    )


def _claimed(row: Sequence[Any]) -> ClaimedDelivery:
    event = StoredEvent(row[7], row[8], row[9], row[10], orjson.loads(row[11])["dossier"])
    return ClaimedDelivery(row[1], row[2], row[3], row[4], row[5], row[6], event)


def _fold_stats(rows: Iterable[Sequence[Any]]) -> list[DestinationStats]:
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
