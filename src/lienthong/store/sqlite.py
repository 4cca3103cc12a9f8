"""The embedded default backend: SQLite in WAL mode, one file, one node.

The SQL is kept portable (``ON CONFLICT``, ``UPDATE ... FROM``, CTEs, partial indexes) so the PostgreSQL
backend (``store.postgres``) reads the same way; its dialect differs in key types and placeholders.

Statements are set-wise: one multi-row ``INSERT ... VALUES (...), (...)`` rather than ``executemany``.
Python's sqlite3 releases the GIL around every row step; each step then has to win the GIL back from the
event loop thread, which can take a whole switch interval. Measured here: a store doing 21,800 events/s
alone fell to 50 events/s beside one busy Python thread with ``executemany``.

One node per file: the backend holds an exclusive lock on ``<file>.lock`` naming its node, and refuses to
open a file another node holds. It also remembers which file it opened: if the file at its path is
removed or replaced under it, every transaction is refused rather than written to a file nobody will see.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from lienthong.citizens.records import LookupRecord
from lienthong.errors import StoreError, StoreMissing, StoreUnavailable
from lienthong.model import (
    AttemptView,
    CircuitRow,
    DestinationStats,
    IngestItem,
    LedgerEntry,
    MappingVersion,
    Message,
    MessageView,
    Outcome,
    Replay,
    ResultSignature,
    StoredEvent,
)
from lienthong.msglog.records import LogRecord
from lienthong.payments.records import PaymentRecord
from lienthong.scheduler.runs import RunRecord
from lienthong.sealing import Sealer
from lienthong.store.contract import KnownEvent, OperatorAction
from lienthong.store.rows import (
    ACTION_COLUMNS,
    CIRCUIT_COLUMNS,
    LEDGER_COLUMNS,
    LEDGER_READ,
    LOOKUP_COLUMNS,
    MESSAGE_FIELDS,
    RUN_COLUMNS,
    NoLog,
    circuit_row,
    claimed,
    closed_circuit,
    data_and_leaf,
    event_row,
    fold_stats,
    ledger_entry,
    ledger_row,
    opener,
    run_record,
    run_row,
    schema,
    split_held,
)
from lienthong.store.sqllog import SqlLogReads, SqlPayments, purge_payloads, reseal_payloads

SCHEMA_VERSION = 10

_SCHEMA = schema(serial="INTEGER PRIMARY KEY AUTOINCREMENT", log_seq="INTEGER PRIMARY KEY")

# Later events win; an event older than what the ledger reflects changes nothing. Fields an event does not
# carry keep their previous value.
_LEDGER_UPSERT = (
    f"INSERT INTO dossiers ({LEDGER_COLUMNS})",
    """
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
    results = COALESCE(excluded.results, dossiers.results),
    updated_ms = excluded.updated_ms
WHERE excluded.occurred_ms >= dossiers.occurred_ms
""",
)

# A verdict on an earlier event's results never replaces one on a later event's.
_SIGNATURE_UPDATE = (
    "UPDATE dossiers SET result_signature = ?, result_signature_note = ?, result_signature_ms = ?,"
    " updated_ms = ? WHERE dossier_code = ? AND (result_signature_ms IS NULL OR result_signature_ms <= ?)"
)

_EVENT_INSERT = (
    "INSERT INTO events (event_id, type, unit_code, dossier_code, occurred_at, payload_sha256, payload,"
    " caller, message_ids, received_ms)",
    "",
)
# Columns in the order of PlannedMessage's fields, then the event's.
_OUTBOX_INSERT = (
    "INSERT INTO outbox (message_id, destination, operation, mapping, mapping_hash, event_id, dossier_code,"
    " status, created_ms, updated_ms, next_attempt_ms)",
    "",
)
_ATTEMPT_INSERT = (
    "INSERT INTO attempts (message_id, attempt, started_ms, duration_ms, outcome, error, http_status)",
    "ON CONFLICT (message_id, attempt) DO NOTHING",
)
_OUTCOME_UPDATE = (
    "WITH v (message_id, status, attempts, updated_ms, next_attempt_ms, last_error, last_http_status, lease)"
    " AS (",
    """)
UPDATE outbox SET status = v.status, attempts = v.attempts, updated_ms = v.updated_ms,
    next_attempt_ms = v.next_attempt_ms, last_error = v.last_error, last_http_status = v.last_http_status
FROM v WHERE outbox.message_id = v.message_id
    AND (v.lease IS NULL
         OR (outbox.lease_until_ms = v.lease AND outbox.status IN ('inflight', 'pending')))""",
)
_HOLD = (
    "UPDATE outbox SET status = 'pending', next_attempt_ms = ?, updated_ms = ?"
    " WHERE message_id = ? AND lease_until_ms = ? AND status = 'inflight'"
)
_KEEP_FIRST = "ON CONFLICT (hash) DO NOTHING"
# Steps from each older schema version to the next; the CREATE ... IF NOT EXISTS script adds new tables.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE outbox ADD COLUMN mapping TEXT",
        "ALTER TABLE outbox ADD COLUMN mapping_hash TEXT",
        "ALTER TABLE outbox ADD COLUMN replayed_ms BIGINT",
        "ALTER TABLE outbox ADD COLUMN replay_base INTEGER NOT NULL DEFAULT 0",
    ),
    2: (
        "ALTER TABLE events ADD COLUMN caller TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE payments ADD COLUMN channel TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE payments ADD COLUMN caller TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE payment_callbacks ADD COLUMN source TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE payment_callbacks ADD COLUMN body_sha256 TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE payment_callbacks ADD COLUMN body_bytes INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE payment_callbacks ADD COLUMN detail TEXT NOT NULL DEFAULT ''",
    ),
    3: ("ALTER TABLE outbox ADD COLUMN lease_until_ms BIGINT NOT NULL DEFAULT 0",),
    4: (),  # the runs table (scheduler history): added by the script
    5: ("ALTER TABLE dossiers ADD COLUMN results INTEGER",),  # how many results a dossier has
    6: (),  # the operator_actions table (replays, discards, reveals): added by the script
    7: (),  # the circuits table (circuit breakers shared by the nodes): added by the script
    8: (),  # the message log's tables (log_records, log_checkpoints): added by the script
    9: (  # the verdict on the PDF signatures of a dossier's results (adapters.results)
        "ALTER TABLE dossiers ADD COLUMN result_signature TEXT",
        "ALTER TABLE dossiers ADD COLUMN result_signature_note TEXT",
        "ALTER TABLE dossiers ADD COLUMN result_signature_ms BIGINT",
    ),
}
_MAX_PARAMS = 30_000  # SQLite's default limit is 32,766 parameters in one statement


# The claimed rows come back as one JSON array in one row: each row fetched is a step that hands the GIL
# away and back (see the module docstring), and a claim may return dozens. SQLite keeps the subquery's
# order in json_group_array.
_CLAIM = """
SELECT json_group_array(json_array(seq, message_id, destination, operation, dossier_code, attempts,
                                   age_from_ms, event_id, type, unit_code, occurred_at, json(payload),
                                   mapping, mapping_hash, replay_base, caller))
FROM (
    SELECT o.seq, o.message_id, o.destination, o.operation, o.dossier_code, o.attempts,
           COALESCE(o.replayed_ms, o.created_ms) AS age_from_ms,
           e.event_id, e.type, e.unit_code, e.occurred_at, e.payload, o.mapping, o.mapping_hash,
           o.replay_base, e.caller
    FROM outbox o JOIN events e ON e.event_id = o.event_id
    WHERE o.status = 'pending' AND o.next_attempt_ms <= ?
      AND NOT EXISTS (
          SELECT 1 FROM outbox p
          WHERE p.destination = o.destination AND p.dossier_code = o.dossier_code
            AND p.status IN ('pending', 'inflight') AND p.seq < o.seq)
      -- A replayed dead letter can sit behind a later message of its key that is in flight. Kept apart
      -- from the check above: an OR there defeats the index's range on seq (claims measured 36x slower).
      AND NOT EXISTS (
          SELECT 1 FROM outbox q
          WHERE q.destination = o.destination AND q.dossier_code = o.dossier_code
            AND q.status IN ('pending', 'inflight') AND q.status = 'inflight')
    ORDER BY o.seq
    LIMIT ?
)
"""


_CLAIM_SEALED = _CLAIM.replace("json(payload)", "payload")


class _Db:
    """The connection, and multi-row statements within SQLite's parameter limit."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.execute = connection.execute

    def rows(self, statement: tuple[str, str], rows: Sequence[tuple[Any, ...]]) -> None:
        """Run ``head VALUES (...), (...) tail`` over ``rows``, in as few statements as the limits allow."""
        if not rows:
            return
        head, tail = statement
        width = len(rows[0])
        per = max(1, min(500, _MAX_PARAMS // width))
        one = f"({', '.join('?' * width)})"
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            values = ", ".join([one] * len(chunk))
            self.execute(f"{head} VALUES {values} {tail}", [v for row in chunk for v in row])


class SqliteEvents:
    def __init__(self, db: _Db, sealer: Sealer | None = None) -> None:
        self._db = db
        self._sealer = sealer
        self._open = opener(sealer)

    def known(self, event_ids: Sequence[str]) -> dict[str, KnownEvent]:
        known: dict[str, KnownEvent] = {}
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            rows = self._db.execute(
                "SELECT event_id, payload_sha256, message_ids, caller FROM events"
                f" WHERE event_id IN ({', '.join('?' * len(chunk))})",
                list(chunk),
            )
            known.update(
                (event_id, KnownEvent(sha, tuple(orjson.loads(ids)), caller))
                for event_id, sha, ids, caller in rows
            )
        return known

    def add(self, items: Sequence[IngestItem], now_ms: int) -> None:
        self._db.rows(_EVENT_INSERT, [event_row(item, now_ms, self._sealer) for item in items])

    def get(self, event_id: str) -> StoredEvent | None:
        row = self._db.execute(
            "SELECT event_id, type, unit_code, occurred_at, payload, caller FROM events WHERE event_id = ?",
            (event_id,),
        ).fetchone()
        if row is None:
            return None
        payload = orjson.loads(self._open(row[0], row[4]))
        return StoredEvent(row[0], row[1], row[2], row[3], payload["dossier"], row[5])

    def purge(self, after: str, limit: int, received_before_ms: int) -> tuple[str | None, int]:
        return purge_payloads(self._db.execute, "?", after, limit, received_before_ms)

    def reseal(self, after: str, limit: int) -> tuple[str | None, int]:
        return reseal_payloads(self._db.execute, "?", self._sealer, after, limit)


class SqliteOutbox:
    def __init__(self, db: _Db, sealer: Sealer | None = None) -> None:
        self._db = db
        self._open = opener(sealer)
        # Sealed payloads are text, not JSON SQLite can embed: the claim returns them as strings to open.
        self._claim = _CLAIM if sealer is None else _CLAIM_SEALED

    def add(self, items: Sequence[IngestItem], now_ms: int) -> None:
        stamps = ("pending", now_ms, now_ms, now_ms)  # status, created, updated, next attempt
        self._db.rows(
            _OUTBOX_INSERT,
            [
                (*d, item.event.event_id, item.event.dossier_code, *stamps)
                for item in items
                for d in item.deliveries
            ],
        )

    def claim(self, now_ms: int, limit: int, lease_until_ms: int) -> list[Message]:
        (found,) = self._db.execute(self._claim, (now_ms, limit)).fetchone()
        rows = orjson.loads(found)
        if not rows:
            return []
        seqs = [r[0] for r in rows]
        self._db.execute(
            f"UPDATE outbox SET status = 'inflight', updated_ms = ?, lease_until_ms = ?"
            f" WHERE seq IN ({', '.join('?' * len(seqs))})",
            [now_ms, lease_until_ms, *seqs],
        )
        if self._claim is _CLAIM:
            return [claimed(row, lease_until_ms, row[11]) for row in rows]
        return [claimed(row, lease_until_ms, orjson.loads(self._open(row[7], row[11]))) for row in rows]

    def release(self, *, now_ms: int | None) -> int:
        if now_ms is None:
            # The lease goes too: an outcome of the run before (sent again) must not land on the row now.
            cursor = self._db.execute(
                "UPDATE outbox SET status = 'pending', lease_until_ms = 0 WHERE status = 'inflight'"
            )
        else:
            cursor = self._db.execute(
                "UPDATE outbox SET status = 'pending' WHERE status = 'inflight' AND lease_until_ms <= ?",
                (now_ms,),
            )
        return cursor.rowcount

    def drop_leases(self, leases: Sequence[int]) -> int:
        if not leases:
            return 0
        cursor = self._db.execute(
            "UPDATE outbox SET status = 'pending', lease_until_ms = 0"
            f" WHERE status = 'inflight' AND lease_until_ms IN ({', '.join('?' * len(leases))})",
            list(leases),
        )
        return cursor.rowcount

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        held, outcomes = split_held(outcomes)
        for o in held:
            self._db.execute(_HOLD, (o.next_attempt_ms, o.finished_ms, o.message_id, o.lease_until_ms))
        self._db.rows(
            _OUTCOME_UPDATE,
            [
                (
                    o.message_id,
                    "pending" if o.kind == "retry" else o.kind,
                    o.attempt,
                    o.finished_ms,
                    o.next_attempt_ms if o.next_attempt_ms is not None else o.finished_ms,
                    *o.detail,
                    o.lease_until_ms,
                )
                for o in outcomes
            ],
        )
        self._db.rows(
            _ATTEMPT_INSERT,
            [
                (o.message_id, o.attempt, o.started_ms, o.finished_ms - o.started_ms, o.kind, *o.detail)
                for o in outcomes
            ],
        )

    def message(self, message_id: str) -> MessageView | None:
        row = self._db.execute(
            f"SELECT {', '.join(MESSAGE_FIELDS)} FROM outbox WHERE message_id = ?", (message_id,)
        ).fetchone()
        if row is None:
            return None
        history = self._db.execute(
            "SELECT attempt, started_ms, duration_ms, outcome, error, http_status FROM attempts"
            " WHERE message_id = ? ORDER BY attempt",
            (message_id,),
        ).fetchall()
        values = dict(zip(MESSAGE_FIELDS, row, strict=True))
        (caller,) = self._db.execute(
            "SELECT caller FROM events WHERE event_id = ?", (values["event_id"],)
        ).fetchone() or ("",)
        return MessageView(**values, caller=caller, history=tuple(AttemptView(*h) for h in history))

    def stats(self) -> list[DestinationStats]:
        # Two index-backed scans: undelivered rows through outbox_key, dead letters through outbox_dead.
        rows = self._db.execute(
            "SELECT destination, status, COUNT(*), MIN(created_ms) FROM outbox"
            " WHERE status IN ('pending', 'inflight') GROUP BY destination, status"
            " UNION ALL SELECT destination, 'dead', COUNT(*), NULL FROM outbox WHERE status = 'dead'"
            " GROUP BY destination"
        ).fetchall()
        return fold_stats(rows)

    def dead(self, destination: str | None, limit: int) -> list[MessageView]:
        where = "status = 'dead'" + (" AND destination = ?" if destination is not None else "")
        args: list[Any] = [destination] if destination is not None else []
        rows = self._db.execute(
            f"SELECT {', '.join(MESSAGE_FIELDS)} FROM outbox WHERE {where} ORDER BY seq LIMIT ?",
            [*args, limit],
        ).fetchall()
        return [MessageView(**dict(zip(MESSAGE_FIELDS, row, strict=True))) for row in rows]

    def replay(self, replays: Sequence[Replay], *, by: str, reason: str, now_ms: int) -> list[str]:
        done: list[str] = []
        for item in replays:
            cursor = self._db.execute(
                "UPDATE outbox SET status = 'pending', replay_base = attempts, next_attempt_ms = ?,"
                " lease_until_ms = 0, updated_ms = ?, replayed_ms = ?,"
                " mapping_hash = COALESCE(?, mapping_hash)"
                " WHERE message_id = ? AND status = 'dead'",
                (now_ms, now_ms, now_ms, item.mapping_hash, item.message_id),
            )
            if cursor.rowcount:
                done.append(item.message_id)
        self._db.rows(
            ("INSERT INTO replays (message_id, replayed_ms, by_whom, reason, mapping_hash)", ""),
            [(i.message_id, now_ms, by, reason, i.mapping_hash) for i in replays if i.message_id in done],
        )
        return done

    def dead_between(
        self, destination: str | None, since_ms: int | None, until_ms: int | None, limit: int
    ) -> list[MessageView]:
        where, args = ["status = 'dead'"], []
        for clause, value in (
            ("destination = ?", destination),
            ("updated_ms >= ?", since_ms),
            ("updated_ms < ?", until_ms),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        rows = self._db.execute(
            f"SELECT {', '.join(MESSAGE_FIELDS)} FROM outbox WHERE {' AND '.join(where)}"
            " ORDER BY seq LIMIT ?",
            [*args, limit],
        ).fetchall()
        return [MessageView(**dict(zip(MESSAGE_FIELDS, row, strict=True))) for row in rows]

    def discard(self, message_ids: Sequence[str], *, now_ms: int) -> list[str]:
        done: list[str] = []
        for message_id in dict.fromkeys(message_ids):
            cursor = self._db.execute(
                "UPDATE outbox SET status = 'discarded', updated_ms = ?"
                " WHERE message_id = ? AND status = 'dead'",
                (now_ms, message_id),
            )
            if cursor.rowcount:
                done.append(message_id)
        return done


class SqliteActions:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def record(self, actions: Sequence[OperatorAction]) -> None:
        self._db.rows((f"INSERT INTO operator_actions ({ACTION_COLUMNS})", ""), [tuple(a) for a in actions])

    def recent(self, limit: int, message_id: str | None) -> list[OperatorAction]:
        where, args = ("WHERE message_id = ?", [message_id]) if message_id is not None else ("", [])
        rows = self._db.execute(
            f"SELECT {ACTION_COLUMNS} FROM operator_actions {where} ORDER BY id DESC LIMIT ?",
            [*args, limit],
        ).fetchall()
        return [OperatorAction(*row) for row in rows]


class SqliteLedger:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def apply(self, entries: Sequence[LedgerEntry], now_ms: int) -> None:
        self._db.rows(_LEDGER_UPSERT, [ledger_row(entry, now_ms) for entry in entries])

    def record_signature(self, signature: ResultSignature, now_ms: int) -> None:
        code, verdict, note, event_ms = signature
        self._db.execute(_SIGNATURE_UPDATE, (verdict, note, event_ms, now_ms, code, event_ms))

    def get(self, dossier_code: str) -> LedgerEntry | None:
        row = self._db.execute(
            f"SELECT {LEDGER_READ} FROM dossiers WHERE dossier_code = ?", (dossier_code,)
        ).fetchone()
        return ledger_entry(row) if row is not None else None

    def page(self, after: str, limit: int) -> list[LedgerEntry]:
        rows = self._db.execute(
            f"SELECT {LEDGER_READ} FROM dossiers WHERE dossier_code > ? ORDER BY dossier_code LIMIT ?",
            (after, limit),
        ).fetchall()
        return [ledger_entry(row) for row in rows]


class SqliteMappings:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def save(self, versions: Sequence[MappingVersion], now_ms: int) -> None:
        rows = [(v.hash, v.name, orjson.dumps(v.document).decode(), now_ms) for v in versions]
        self._db.rows(
            ("INSERT INTO mapping_versions (hash, name, document, first_seen_ms)", _KEEP_FIRST), rows
        )

    def get(self, mapping_hash: str) -> MappingVersion | None:
        row = self._db.execute(
            "SELECT hash, name, document FROM mapping_versions WHERE hash = ?", (mapping_hash,)
        ).fetchone()
        return MappingVersion(row[0], row[1], orjson.loads(row[2])) if row is not None else None


class SqlitePayments(SqlPayments):
    def __init__(self, db: _Db, sealer: Sealer | None = None) -> None:
        super().__init__(db.execute, "?", sealer)

    def hold(self, reference: str) -> PaymentRecord | None:
        # Every transaction here is BEGIN IMMEDIATE: it holds the database's write lock from its start,
        # so no other transaction can judge this payment meanwhile.
        return self.get(reference)


class SqliteAudit:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def record_lookups(self, records: Sequence[LookupRecord]) -> None:
        self._db.rows(
            (f"INSERT INTO lookups ({LOOKUP_COLUMNS})", ""),
            [tuple(getattr(r, name) for name in LOOKUP_COLUMNS.split(", ")) for r in records],
        )

    def lookups(self, limit: int) -> list[LookupRecord]:
        rows = self._db.execute(
            f"SELECT {LOOKUP_COLUMNS} FROM lookups ORDER BY at_ms DESC, rowid DESC LIMIT ?", (limit,)
        ).fetchall()
        return [LookupRecord(*row) for row in rows]


class SqliteCursors:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def get(self, source: str) -> str | None:
        row = self._db.execute("SELECT cursor FROM cursors WHERE source = ?", (source,)).fetchone()
        return str(row[0]) if row is not None else None

    def set(self, source: str, cursor: str, now_ms: int) -> None:
        self._db.execute(
            "INSERT INTO cursors (source, cursor, updated_ms) VALUES (?, ?, ?)"
            " ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, updated_ms = excluded.updated_ms",
            (source, cursor, now_ms),
        )


class SqliteCircuits:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def all(self) -> list[CircuitRow]:
        rows = self._db.execute(f"SELECT {CIRCUIT_COLUMNS} FROM circuits ORDER BY destination").fetchall()
        return [circuit_row(row) for row in rows]

    def hold(self, destinations: Sequence[str]) -> list[CircuitRow]:
        # One writer at a time (BEGIN IMMEDIATE): what is read stays so until this transaction ends.
        wanted = sorted(set(destinations))
        found = {
            row.destination: row
            for row in map(
                circuit_row,
                self._db.execute(
                    f"SELECT {CIRCUIT_COLUMNS} FROM circuits"
                    " WHERE destination IN (SELECT value FROM json_each(?))",
                    (orjson.dumps(wanted).decode(),),
                ).fetchall(),
            )
        }
        return [found.get(d) or closed_circuit(d) for d in wanted]

    def put(self, rows: Sequence[CircuitRow]) -> None:
        self._db.rows((f"INSERT OR REPLACE INTO circuits ({CIRCUIT_COLUMNS})", ""), [tuple(r) for r in rows])


class SqliteLog(SqlLogReads):
    def __init__(self, db: _Db) -> None:
        super().__init__(db.execute, "?", "CAST(data AS BLOB)")
        self._db = db

    def append(self, records: Sequence[LogRecord]) -> None:
        if not records:
            return
        start = self.size()
        self._db.rows(
            ("INSERT INTO log_records (seq, at_ms, kind, subject, data, leaf)", ""),
            [(start + i, r.at_ms, r.kind, r.subject, *data_and_leaf(r)) for i, r in enumerate(records)],
        )


class SqliteRuns:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def claim(self, run: RunRecord) -> bool:
        row = run_row(run)
        cursor = self._db.execute(
            f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * len(row))})"
            " ON CONFLICT (run_id, attempt) DO NOTHING",
            row,
        )
        return cursor.rowcount == 1

    def finish(self, run: RunRecord) -> None:
        values = dict(zip(RUN_COLUMNS.split(", "), run_row(run), strict=True))
        self._db.execute(
            "UPDATE runs SET outcome = ?, ended_ms = ?, counts = ?, reports = ?, detail = ?"
            " WHERE run_id = ? AND attempt = ?",
            [values[c] for c in ("outcome", "ended_ms", "counts", "reports", "detail", "run_id", "attempt")],
        )

    def attempts(self, run_id: str) -> list[RunRecord]:
        rows = self._db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ? ORDER BY attempt", (run_id,)
        ).fetchall()
        return [run_record(row) for row in rows]

    def recent(self, limit: int, job: str | None) -> list[RunRecord]:
        where, args = ("WHERE job = ?", [job]) if job is not None else ("", [])
        rows = self._db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs {where}"
            " ORDER BY started_ms DESC, run_id DESC, attempt DESC LIMIT ?",
            [*args, limit],
        ).fetchall()
        return [run_record(row) for row in rows]

    def latest(self, job: str) -> RunRecord | None:
        row = self._db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE job = ? ORDER BY window_end_ms DESC, attempt DESC LIMIT 1",
            (job,),
        ).fetchone()
        return run_record(row) if row is not None else None

    def last_success(self, job: str) -> RunRecord | None:
        row = self._db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE job = ? AND outcome = 'succeeded'"
            " ORDER BY ended_ms DESC LIMIT 1",
            (job,),
        ).fetchone()
        return run_record(row) if row is not None else None

    def abandon(self, job: str, started_before_ms: int, now_ms: int, detail: str) -> int:
        cursor = self._db.execute(
            "UPDATE runs SET outcome = 'failed', ended_ms = ?, detail = ?"
            " WHERE job = ? AND outcome = 'running' AND started_ms < ?",
            (now_ms, detail, job, started_before_ms),
        )
        return cursor.rowcount


class SqliteBackend:
    """A ``store.contract.Backend`` on one SQLite connection. Use it from one thread: its runner's.

    The lock file ``.<name>.lock`` beside the database (a name ``rm lienthong.db*`` does not catch) also
    says that a store ran here. A missing database with no lock file is a first start: it is created. A
    missing database beside a lock file was removed, and opening it is StoreMissing, so it is never
    silently replaced by an empty one; ``init`` (``lienthong db init``) creates it anyway.
    ``node`` names this node in the lock file, for the message another node gets; None opens the store
    without the lock, for an operator's tool beside the running node (SQLite serialises their writes).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "full",
        init: bool = False,
        node: str | None = "",
        message_log: bool = True,
        sealer: Sealer | None = None,
    ) -> None:
        # The real file: a symlinked path must find the same lock file as the file's own path does.
        self.path = Path(path).resolve()
        lock_path = lock_file(self.path)
        if not init and not self.path.exists() and node is None:
            raise StoreMissing(f"no store at {self.path}: a node creates it at its first start")
        if not init and not self.path.exists() and lock_path.exists():
            raise StoreMissing(
                f"no store at {self.path}, but a store ran there before ({lock_path} is its lock file): the"
                " database was removed or moved. Restore it, or create an empty one with"
                " `lienthong db init CONFIG`"
            )
        holder = node or f"{socket.gethostname()} pid {os.getpid()}"
        self._lock = _lock(self.path, holder) if node is not None else None
        connection: sqlite3.Connection | None = None
        try:
            connection = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=True)
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("PRAGMA busy_timeout = 5000")
            _migrate(connection)
            self._identity = _identity(self.path)
        except BaseException as exc:
            if connection is not None:
                connection.close()
            if self._lock is not None:
                self._lock.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open the SQLite store at {self.path}: {exc}") from exc
            raise
        self._connection = connection
        db = _Db(connection)
        self.events = SqliteEvents(db, sealer)
        self.outbox = SqliteOutbox(db, sealer)
        self.ledger = SqliteLedger(db)
        self.mappings = SqliteMappings(db)
        self.payments = SqlitePayments(db, sealer)
        self.audit = SqliteAudit(db)
        self.runs = SqliteRuns(db)
        self.cursors = SqliteCursors(db)
        self.actions = SqliteActions(db)
        self.circuits = SqliteCircuits(db)
        self.log: SqliteLog | NoLog = SqliteLog(db) if message_log else NoLog()

    def begin(self) -> None:
        # One stat per transaction (about a microsecond) guards against writing to a file nobody will see.
        if _identity(self.path) != self._identity:
            raise StoreUnavailable(
                f"the database file {self.path} was removed or replaced under the running store; refusing"
                " to write. Stop the node, restore the file, and start it again"
            )
        self._connection.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._connection.execute("COMMIT")

    def rollback(self) -> None:
        if self._connection.in_transaction:
            self._connection.execute("ROLLBACK")

    def close(self) -> None:
        self._connection.close()
        if self._lock is not None:
            self._lock.close()


def schema_version(path: str | Path) -> int | None:
    """The schema version of the store at ``path``, or None when there is none (read only)."""
    if not Path(path).exists():
        return None
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not found:
            return None
        row = connection.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row is not None else None
    finally:
        connection.close()


def lock_file(path: Path) -> Path:
    """The lock file of the database at ``path``: ``.<name>.lock`` in its directory."""
    return path.with_name(f".{path.name}.lock")


def _lock(path: Path, node: str) -> IO[str]:
    """Hold the lock file for as long as the store is open; refuse when another node holds it."""
    try:
        handle = open(lock_file(path), "a+", encoding="utf-8")  # noqa: SIM115 (held until close)
    except OSError as exc:
        raise StoreError(f"cannot open the SQLite store at {path}: {exc}") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreError(
            f"the store {path} is in use by another node ({holder}): one node per SQLite file"
            " (several nodes need PostgreSQL)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(node)
    handle.flush()
    return handle


def _identity(path: Path) -> tuple[int, int] | None:
    with contextlib.suppress(FileNotFoundError):
        stat = os.stat(path)
        return stat.st_dev, stat.st_ino
    return None


def _migrate(connection: sqlite3.Connection) -> None:
    """Create the schema, or bring an older one up to SCHEMA_VERSION, in one transaction."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        _upgrade(connection)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _upgrade(connection: sqlite3.Connection) -> None:
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    row = connection.execute("SELECT version FROM schema_version").fetchone() if exists else None
    version = row[0] if row is not None else None
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(
            f"the store's schema version is {version}, newer than this lienthong knows"
            f" ({SCHEMA_VERSION}); upgrade lienthong"
        )
    for older in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
        for step in _MIGRATIONS.get(older, ()):
            if not _added_already(connection, step):
                connection.execute(step)
    for statement in _statements(_SCHEMA):
        connection.execute(statement)
    if version is None:
        connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
    elif version < SCHEMA_VERSION:
        connection.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))


_ADD_COLUMN = re.compile(r"^ALTER TABLE (\w+) ADD COLUMN (\w+)")


def _added_already(connection: sqlite3.Connection, step: str) -> bool:
    """Whether ``step`` adds a column the table has already: SQLite has no ``ADD COLUMN IF NOT EXISTS``,
    and a store whose version says older than its tables (a migration cut short, a hand-made test store)
    must still upgrade."""
    found = _ADD_COLUMN.match(step)
    if found is None:
        return False
    table, column = found.groups()
    return any(row[1] == column for row in connection.execute(f"PRAGMA table_info({table})"))


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
