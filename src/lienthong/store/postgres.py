"""The backend for several nodes: PostgreSQL through psycopg 3, a connection pool and worker threads.

Tables and columns are SQLite's (``store.sqlite``) in PostgreSQL types. Statements are set-wise: every
multi-row write binds one array per column and reads them back with ``unnest``, so a statement's text
does not depend on how many rows it carries (psycopg prepares it once) and no hot path makes a round
trip per row.

Order (decision 0010). A sequence value is taken when a row is inserted, not when its transaction
commits, so two transactions can commit outbox rows out of ``seq`` order; a claim trusting ``seq`` could
then hand out a dossier's later event while its earlier one is still being written. Every transaction
that looks up or adds events and outbox rows, and every claim, therefore takes one transaction-scoped
advisory lock, the *order lock*, first: rows become visible in ``seq`` order, a request racing the same
event on another node gets its duplicate answer, and claims, from any node, run one at a time. Outcomes,
replays, payments and reads do not take it.

``PostgresPool(dsn, size=..., init=...)`` opens the pool and brings the schema up to date on ``start``;
``.runner()`` is the ``Runner``: ``size`` threads, each holding one pooled connection, take units from
one queue and commit them together (``store.runner.execute``).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from lienthong.citizens.records import LookupRecord
from lienthong.errors import StoreError, StoreUnavailable
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
from lienthong.store.contract import KnownEvent, OperatorAction, Tx
from lienthong.store.rows import (
    ACTION_COLUMNS,
    CIRCUIT_COLUMNS,
    LEDGER_COLUMNS,
    LEDGER_READ,
    LOOKUP_COLUMNS,
    MESSAGE_FIELDS,
    PAYMENT_COLUMNS,
    RUN_COLUMNS,
    NoLog,
    circuit_row,
    claimed,
    data_and_leaf,
    event_row,
    fold_stats,
    ledger_entry,
    ledger_row,
    opener,
    payment_record,
    run_record,
    run_row,
    schema,
    split_held,
)
from lienthong.store.runner import STOP, Op, answer, execute, next_batch
from lienthong.store.sqllog import SqlLogReads, SqlPayments, purge_payloads, reseal_payloads

T = TypeVar("T")
Connection = psycopg.Connection[Any]

SCHEMA_VERSION = 10
"""The same number as SQLite's schema: the two describe the same tables."""

_SCHEMA = schema(serial="BIGSERIAL PRIMARY KEY", log_seq="BIGINT PRIMARY KEY")

# Steps from each older schema version to the next; the CREATE ... IF NOT EXISTS script adds new tables.
# PostgreSQL stores start at version 4 (SQLite's versions 1 to 3 never existed here).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    4: (),  # the runs table (scheduler history): added by the script
    5: ("ALTER TABLE dossiers ADD COLUMN IF NOT EXISTS results INTEGER",),  # how many results a dossier has
    6: (),  # the operator_actions table (replays, discards, reveals): added by the script
    7: (),  # the circuits table (circuit breakers shared by the nodes): added by the script
    8: (),  # the message log's tables (log_records, log_checkpoints): added by the script
    9: (  # the verdict on the PDF signatures of a dossier's results (adapters.results)
        "ALTER TABLE dossiers ADD COLUMN IF NOT EXISTS result_signature TEXT",
        "ALTER TABLE dossiers ADD COLUMN IF NOT EXISTS result_signature_note TEXT",
        "ALTER TABLE dossiers ADD COLUMN IF NOT EXISTS result_signature_ms BIGINT",
    ),
}

# Advisory lock keys (64-bit, one space per database). The order lock is keyed by the outbox table's oid,
# so stores in other schemas of one database do not wait for each other; migrations by the schema's name.
_ORDER_LOCK_SPACE = 0x4C54_0001 << 32
_LOG_LOCK = 0x4C54_0002 << 32  # the message log's appends (one space per database, as the order lock)
_MIGRATION_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended('lienthong migrations ' || current_schema(), 0))"
)


def _unnest(*types: str) -> str:
    """``unnest(%b::t1[], %b::t2[], ...)``: one array parameter per column, sent in binary (psycopg
    writes a text array escaping every quote of every JSON payload in Python: 9 ms for 100 events)."""
    return f"unnest({', '.join(f'%b::{t}[]' for t in types)})"


_LEDGER_TYPES = (
    *("text",) * 4,
    "bigint",
    *("text",) * 3,
    "int",
    *("text",) * 3,
    "bigint",
    "bigint",
    "text",  # result_sha256
    "int",  # results
    "bigint",
)
# Later events win; an event older than what the ledger reflects changes nothing. Fields an event does not
# carry keep their previous value.
_LEDGER_UPSERT = f"""
INSERT INTO dossiers ({LEDGER_COLUMNS}) SELECT * FROM {_unnest(*_LEDGER_TYPES)}
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
"""
# A verdict on an earlier event's results never replaces one on a later event's.
_SIGNATURE_UPDATE = (
    "UPDATE dossiers SET result_signature = %s, result_signature_note = %s, result_signature_ms = %s,"
    " updated_ms = %s WHERE dossier_code = %s AND (result_signature_ms IS NULL OR result_signature_ms <= %s)"
)
_EVENT_INSERT = (
    "INSERT INTO events (event_id, type, unit_code, dossier_code, occurred_at, payload_sha256, payload,"
    f" caller, message_ids, received_ms) SELECT * FROM {_unnest(*('text',) * 9, 'bigint')}"
)
# Columns in the order of PlannedMessage's fields, then the event's. Rows take their seq in the arrays'
# order, so one request's messages of one key keep the request's order.
_OUTBOX_INSERT = f"""
INSERT INTO outbox (message_id, destination, operation, mapping, mapping_hash, event_id, dossier_code,
                    status, created_ms, updated_ms, next_attempt_ms)
SELECT m, d, op, map, h, e, dc, 'pending', %s, %s, %s
FROM {_unnest(*("text",) * 7)} WITH ORDINALITY AS v (m, d, op, map, h, e, dc, n)
ORDER BY n
"""
_ATTEMPT_INSERT = (
    "INSERT INTO attempts (message_id, attempt, started_ms, duration_ms, outcome, error, http_status)"
    f" SELECT * FROM {_unnest('text', 'int', 'bigint', 'bigint', 'text', 'text', 'int')}"
    " ON CONFLICT (message_id, attempt) DO NOTHING"
)
# An outcome carries the lease it was claimed under: if the message was claimed again since, it is dropped.
_OUTCOME_UPDATE = f"""
UPDATE outbox o SET status = v.status, attempts = v.attempts, updated_ms = v.updated_ms,
    next_attempt_ms = v.next_attempt_ms, last_error = v.last_error, last_http_status = v.last_http_status
FROM {_unnest("text", "text", "int", "bigint", "bigint", "text", "int", "bigint")}
    AS v (message_id, status, attempts, updated_ms, next_attempt_ms, last_error, last_http_status, lease)
WHERE o.message_id = v.message_id
  AND (v.lease IS NULL OR (o.lease_until_ms = v.lease AND o.status IN ('inflight', 'pending')))
"""
_HOLD = (
    "UPDATE outbox SET status = 'pending', next_attempt_ms = %s, updated_ms = %s"
    " WHERE message_id = %s AND lease_until_ms = %s AND status = 'inflight'"
)
_REPLAY = """
UPDATE outbox o SET status = 'pending', replay_base = o.attempts, next_attempt_ms = %(now)s,
    lease_until_ms = 0, updated_ms = %(now)s, replayed_ms = %(now)s,
    mapping_hash = COALESCE(v.mapping_hash, o.mapping_hash)
FROM unnest(%(ids)b::text[], %(hashes)b::text[]) AS v (message_id, mapping_hash)
WHERE o.message_id = v.message_id AND o.status = 'dead'
RETURNING o.message_id
"""
# One statement chooses and leases: due rows, oldest first, none behind an undelivered row of its key and
# none of a key with a row in flight (whatever its seq: a lapsed lease's row is pending again by now).
# The UPDATE checks status and due time again on the row it locks, in case an outcome changed it meanwhile.
_CLAIM = """
WITH due AS (
    SELECT o.seq FROM outbox o
    WHERE o.status = 'pending' AND o.next_attempt_ms <= %(now)s
      AND NOT EXISTS (
          SELECT 1 FROM outbox p
          WHERE p.destination = o.destination AND p.dossier_code = o.dossier_code
            AND (p.status = 'inflight' OR (p.status = 'pending' AND p.seq < o.seq)))
    ORDER BY o.seq
    LIMIT %(limit)s
)
UPDATE outbox o SET status = 'inflight', updated_ms = %(now)s, lease_until_ms = %(lease)s
FROM due, events e
WHERE o.seq = due.seq AND e.event_id = o.event_id
  AND o.status = 'pending' AND o.next_attempt_ms <= %(now)s
RETURNING o.seq, o.message_id, o.destination, o.operation, o.dossier_code, o.attempts,
          COALESCE(o.replayed_ms, o.created_ms), e.event_id, e.type, e.unit_code, e.occurred_at,
          e.payload, o.mapping, o.mapping_hash, o.replay_base, e.caller
"""


class _Db:
    """The connection's cursor, and the order lock (taken at most once per transaction)."""

    def __init__(self, connection: Connection, order_lock_key: int) -> None:
        self.cursor = connection.cursor()
        self._order_lock_key = order_lock_key
        self.holds_order_lock = False

    def execute(self, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> psycopg.Cursor[Any]:
        return self.cursor.execute(query, params)

    def columns(self, query: str, rows: Sequence[Sequence[Any]], *head: Any) -> None:
        """Run ``query`` with ``head`` and then one array per column of ``rows`` (nothing when no rows)."""
        if rows:
            self.execute(query, [*head, *(list(column) for column in zip(*rows, strict=True))])

    def order_lock(self) -> None:
        """Wait for the order lock; held until this transaction ends (decision 0010)."""
        if not self.holds_order_lock:
            self.execute("SELECT pg_advisory_xact_lock(%s)", (self._order_lock_key,))
            self.holds_order_lock = True


class PostgresEvents:
    def __init__(self, db: _Db, sealer: Sealer | None = None) -> None:
        self._db = db
        self._sealer = sealer
        self._open = opener(sealer)

    def known(self, event_ids: Sequence[str]) -> dict[str, KnownEvent]:
        if not event_ids:
            return {}
        # Under the order lock, what is known stays so until this transaction adds to it: a request racing
        # the same event on another worker or node gets its duplicate answer, not a unique violation.
        self._db.order_lock()
        rows = self._db.execute(
            "SELECT event_id, payload_sha256, message_ids, caller FROM events"
            " WHERE event_id = ANY(%b::text[])",
            (list(event_ids),),
        ).fetchall()
        return {
            event_id: KnownEvent(sha, tuple(orjson.loads(ids)), caller) for event_id, sha, ids, caller in rows
        }

    def add(self, items: Sequence[IngestItem], now_ms: int) -> None:
        self._db.order_lock()  # taken by ``known`` already, in a unit of work
        self._db.columns(_EVENT_INSERT, [event_row(item, now_ms, self._sealer) for item in items])

    def get(self, event_id: str) -> StoredEvent | None:
        row = self._db.execute(
            "SELECT event_id, type, unit_code, occurred_at, payload, caller FROM events WHERE event_id = %s",
            (event_id,),
        ).fetchone()
        if row is None:
            return None
        payload = orjson.loads(self._open(row[0], row[4]))
        return StoredEvent(row[0], row[1], row[2], row[3], payload["dossier"], row[5])

    def purge(self, after: str, limit: int, received_before_ms: int) -> tuple[str | None, int]:
        return purge_payloads(self._db.execute, "%s", after, limit, received_before_ms)

    def reseal(self, after: str, limit: int) -> tuple[str | None, int]:
        return reseal_payloads(self._db.execute, "%s", self._sealer, after, limit)


class PostgresOutbox:
    def __init__(self, db: _Db, sealer: Sealer | None = None) -> None:
        self._db = db
        self._open = opener(sealer)

    def add(self, items: Sequence[IngestItem], now_ms: int) -> None:
        rows = [(*d, item.event.event_id, item.event.dossier_code) for item in items for d in item.deliveries]
        if rows:
            self._db.order_lock()  # rows commit in seq order (decision 0010)
            self._db.columns(_OUTBOX_INSERT, rows, now_ms, now_ms, now_ms)

    def claim(self, now_ms: int, limit: int, lease_until_ms: int) -> list[Message]:
        # The lock first, the claim in a statement of its own: its snapshot then sees every row committed
        # before the lock was granted, and no transaction adding rows is under way.
        self._db.order_lock()
        rows = self._db.execute(_CLAIM, {"now": now_ms, "limit": limit, "lease": lease_until_ms}).fetchall()
        rows.sort(key=lambda row: row[0])
        return [claimed(row, lease_until_ms, orjson.loads(self._open(row[7], row[11]))) for row in rows]

    def release(self, *, now_ms: int | None) -> int:
        if now_ms is None:
            cursor = self._db.execute(
                "UPDATE outbox SET status = 'pending', lease_until_ms = 0 WHERE status = 'inflight'"
            )
        else:
            cursor = self._db.execute(
                "UPDATE outbox SET status = 'pending' WHERE status = 'inflight' AND lease_until_ms <= %s",
                (now_ms,),
            )
        return cursor.rowcount

    def drop_leases(self, leases: Sequence[int]) -> int:
        if not leases:
            return 0
        cursor = self._db.execute(
            "UPDATE outbox SET status = 'pending', lease_until_ms = 0"
            " WHERE status = 'inflight' AND lease_until_ms = ANY(%s::bigint[])",
            (list(leases),),
        )
        return cursor.rowcount

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        held, outcomes = split_held(outcomes)
        for o in held:
            self._db.execute(_HOLD, (o.next_attempt_ms, o.finished_ms, o.message_id, o.lease_until_ms))
        self._db.columns(
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
        self._db.columns(
            _ATTEMPT_INSERT,
            [
                (o.message_id, o.attempt, o.started_ms, o.finished_ms - o.started_ms, o.kind, *o.detail)
                for o in outcomes
            ],
        )

    def message(self, message_id: str) -> MessageView | None:
        row = self._db.execute(
            f"SELECT {', '.join(MESSAGE_FIELDS)}, (SELECT caller FROM events e"
            " WHERE e.event_id = o.event_id) FROM outbox o WHERE o.message_id = %s",
            (message_id,),
        ).fetchone()
        if row is None:
            return None
        history = self._db.execute(
            "SELECT attempt, started_ms, duration_ms, outcome, error, http_status FROM attempts"
            " WHERE message_id = %s ORDER BY attempt",
            (message_id,),
        ).fetchall()
        values = dict(zip(MESSAGE_FIELDS, row[:-1], strict=True))
        return MessageView(**values, caller=row[-1] or "", history=tuple(AttemptView(*h) for h in history))

    def stats(self) -> list[DestinationStats]:
        rows = self._db.execute(
            "SELECT destination, status, COUNT(*), MIN(created_ms) FROM outbox"
            " WHERE status IN ('pending', 'inflight') GROUP BY destination, status"
            " UNION ALL SELECT destination, 'dead', COUNT(*), NULL FROM outbox WHERE status = 'dead'"
            " GROUP BY destination"
        ).fetchall()
        return fold_stats(rows)

    def dead(self, destination: str | None, limit: int) -> list[MessageView]:
        where = "status = 'dead'" + (" AND destination = %s" if destination is not None else "")
        args: list[Any] = [destination] if destination is not None else []
        rows = self._db.execute(
            f"SELECT {', '.join(MESSAGE_FIELDS)} FROM outbox WHERE {where} ORDER BY seq LIMIT %s",
            [*args, limit],
        ).fetchall()
        return [MessageView(**dict(zip(MESSAGE_FIELDS, row, strict=True))) for row in rows]

    def replay(self, replays: Sequence[Replay], *, by: str, reason: str, now_ms: int) -> list[str]:
        wanted = list({r.message_id: r for r in reversed(replays)}.values())[::-1]  # the first of each id
        if not wanted:
            return []
        rows = self._db.execute(
            _REPLAY,
            {
                "now": now_ms,
                "ids": [r.message_id for r in wanted],
                "hashes": [r.mapping_hash for r in wanted],
            },
        ).fetchall()
        replayed = {row[0] for row in rows}
        done = [r for r in wanted if r.message_id in replayed]
        self._db.columns(
            "INSERT INTO replays (message_id, replayed_ms, by_whom, reason, mapping_hash)"
            f" SELECT * FROM {_unnest('text', 'bigint', 'text', 'text', 'text')}",
            [(r.message_id, now_ms, by, reason, r.mapping_hash) for r in done],
        )
        return [r.message_id for r in done]

    def dead_between(
        self, destination: str | None, since_ms: int | None, until_ms: int | None, limit: int
    ) -> list[MessageView]:
        where, args = ["status = 'dead'"], []
        for clause, value in (
            ("destination = %s", destination),
            ("updated_ms >= %s", since_ms),
            ("updated_ms < %s", until_ms),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        rows = self._db.execute(
            f"SELECT {', '.join(MESSAGE_FIELDS)} FROM outbox WHERE {' AND '.join(where)}"
            " ORDER BY seq LIMIT %s",
            [*args, limit],
        ).fetchall()
        return [MessageView(**dict(zip(MESSAGE_FIELDS, row, strict=True))) for row in rows]

    def discard(self, message_ids: Sequence[str], *, now_ms: int) -> list[str]:
        wanted = list(dict.fromkeys(message_ids))
        if not wanted:
            return []
        rows = self._db.execute(
            "UPDATE outbox SET status = 'discarded', updated_ms = %s"
            " WHERE message_id = ANY(%s) AND status = 'dead' RETURNING message_id",
            (now_ms, wanted),
        ).fetchall()
        discarded = {row[0] for row in rows}
        return [i for i in wanted if i in discarded]


class PostgresActions:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def record(self, actions: Sequence[OperatorAction]) -> None:
        self._db.columns(
            f"INSERT INTO operator_actions ({ACTION_COLUMNS})"
            f" SELECT * FROM {_unnest('bigint', 'text', 'text', 'text', 'text', 'text')}",
            [tuple(a) for a in actions],
        )

    def recent(self, limit: int, message_id: str | None) -> list[OperatorAction]:
        where, args = ("WHERE message_id = %s", [message_id]) if message_id is not None else ("", [])
        rows = self._db.execute(
            f"SELECT {ACTION_COLUMNS} FROM operator_actions {where} ORDER BY id DESC LIMIT %s",
            [*args, limit],
        ).fetchall()
        return [OperatorAction(*row) for row in rows]


class PostgresLedger:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def apply(self, entries: Sequence[LedgerEntry], now_ms: int) -> None:
        self._db.columns(_LEDGER_UPSERT, [ledger_row(entry, now_ms) for entry in entries])

    def record_signature(self, signature: ResultSignature, now_ms: int) -> None:
        code, verdict, note, event_ms = signature
        self._db.execute(_SIGNATURE_UPDATE, (verdict, note, event_ms, now_ms, code, event_ms))

    def get(self, dossier_code: str) -> LedgerEntry | None:
        row = self._db.execute(
            f"SELECT {LEDGER_READ} FROM dossiers WHERE dossier_code = %s", (dossier_code,)
        ).fetchone()
        return ledger_entry(row) if row is not None else None

    def page(self, after: str, limit: int) -> list[LedgerEntry]:
        # The comparison and the order in the same (the database's) collation, so the primary key's index
        # serves both; pages are in the store's own order, which may differ from another backend's.
        rows = self._db.execute(
            f"SELECT {LEDGER_READ} FROM dossiers WHERE dossier_code > %s ORDER BY dossier_code LIMIT %s",
            (after, limit),
        ).fetchall()
        return [ledger_entry(row) for row in rows]


class PostgresMappings:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def save(self, versions: Sequence[MappingVersion], now_ms: int) -> None:
        self._db.columns(
            "INSERT INTO mapping_versions (hash, name, document, first_seen_ms)"
            f" SELECT * FROM {_unnest('text', 'text', 'text', 'bigint')} ON CONFLICT (hash) DO NOTHING",
            [(v.hash, v.name, orjson.dumps(v.document).decode(), now_ms) for v in versions],
        )

    def get(self, mapping_hash: str) -> MappingVersion | None:
        row = self._db.execute(
            "SELECT hash, name, document FROM mapping_versions WHERE hash = %s", (mapping_hash,)
        ).fetchone()
        return MappingVersion(row[0], row[1], orjson.loads(row[2])) if row is not None else None


class PostgresPayments(SqlPayments):
    def __init__(self, db: _Db, sealer: Sealer | None = None) -> None:
        super().__init__(db.execute, "%s", sealer)

    def hold(self, reference: str) -> PaymentRecord | None:
        # A row lock: a second transaction settling this payment (another worker, another node) waits,
        # then reads the row as the first one left it (READ COMMITTED re-reads a locked row).
        row = self._rows(
            f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE reference = ? FOR UPDATE", (reference,)
        )
        return payment_record(row[0], self._sealer) if row else None


class PostgresAudit:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def record_lookups(self, records: Sequence[LookupRecord]) -> None:
        self._db.columns(
            f"INSERT INTO lookups ({LOOKUP_COLUMNS})"
            f" SELECT * FROM {_unnest('text', 'bigint', *('text',) * 6)}",
            [tuple(getattr(r, name) for name in LOOKUP_COLUMNS.split(", ")) for r in records],
        )

    def lookups(self, limit: int) -> list[LookupRecord]:
        # No rowid here: look-ups of one millisecond come newest id first.
        rows = self._db.execute(
            f"SELECT {LOOKUP_COLUMNS} FROM lookups ORDER BY at_ms DESC, request_id DESC LIMIT %s", (limit,)
        ).fetchall()
        return [LookupRecord(*row) for row in rows]


class PostgresCursors:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def get(self, source: str) -> str | None:
        row = self._db.execute("SELECT cursor FROM cursors WHERE source = %s", (source,)).fetchone()
        return str(row[0]) if row is not None else None

    def set(self, source: str, cursor: str, now_ms: int) -> None:
        self._db.execute(
            "INSERT INTO cursors (source, cursor, updated_ms) VALUES (%s, %s, %s)"
            " ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, updated_ms = excluded.updated_ms",
            (source, cursor, now_ms),
        )


class PostgresCircuits:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def all(self) -> list[CircuitRow]:
        rows = self._db.execute(f"SELECT {CIRCUIT_COLUMNS} FROM circuits ORDER BY destination").fetchall()
        return [circuit_row(row) for row in rows]

    def hold(self, destinations: Sequence[str]) -> list[CircuitRow]:
        # Rows to lock must exist: a destination never seen gets its closed row first (two nodes racing
        # to make it: the second does nothing). Locked in one order, so two nodes never deadlock.
        wanted = sorted(set(destinations))
        self._db.execute(
            "INSERT INTO circuits (destination, state, open_for_ms, reopen_at_ms, updated_ms)"
            " SELECT d, 0, 0, 0, 0 FROM unnest(%s::text[]) AS d ON CONFLICT (destination) DO NOTHING",
            (wanted,),
        )
        rows = self._db.execute(
            f"SELECT {CIRCUIT_COLUMNS} FROM circuits WHERE destination = ANY(%s)"
            " ORDER BY destination FOR UPDATE",
            (wanted,),
        ).fetchall()
        return [circuit_row(row) for row in rows]

    def put(self, rows: Sequence[CircuitRow]) -> None:
        self._db.columns(
            f"INSERT INTO circuits ({CIRCUIT_COLUMNS})"
            " SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[], %s::text[],"
            " %s::bigint[]) ON CONFLICT (destination) DO UPDATE SET state = excluded.state,"
            " open_for_ms = excluded.open_for_ms, reopen_at_ms = excluded.reopen_at_ms,"
            " probe = excluded.probe, updated_ms = excluded.updated_ms",
            rows,
        )


class PostgresLog(SqlLogReads):
    def __init__(self, db: _Db) -> None:
        super().__init__(db.execute, "%s", "convert_to(data, 'UTF8')")
        self._db = db

    def append(self, records: Sequence[LogRecord]) -> None:
        if not records:
            return
        # One appender at a time across nodes, until this transaction ends: indexes are dense and in
        # commit order (a sequence would hand them out before commit, and a reader could see a gap).
        self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOG_LOCK,))
        start = self.size()
        rows = [(start + i, r.at_ms, r.kind, r.subject, *data_and_leaf(r)) for i, r in enumerate(records)]
        self._db.columns(
            "INSERT INTO log_records (seq, at_ms, kind, subject, data, leaf)"
            " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[],"
            " %s::text[])",
            rows,
        )


class PostgresRuns:
    def __init__(self, db: _Db) -> None:
        self._db = db

    def claim(self, run: RunRecord) -> bool:
        # A second node inserting the same attempt waits for the first's transaction, then does nothing.
        row = run_row(run)
        cursor = self._db.execute(
            f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join(['%s'] * len(row))})"
            " ON CONFLICT (run_id, attempt) DO NOTHING",
            row,
        )
        return cursor.rowcount == 1

    def finish(self, run: RunRecord) -> None:
        values = dict(zip(RUN_COLUMNS.split(", "), run_row(run), strict=True))
        self._db.execute(
            "UPDATE runs SET outcome = %s, ended_ms = %s, counts = %s, reports = %s, detail = %s"
            " WHERE run_id = %s AND attempt = %s",
            [values[c] for c in ("outcome", "ended_ms", "counts", "reports", "detail", "run_id", "attempt")],
        )

    def attempts(self, run_id: str) -> list[RunRecord]:
        rows = self._db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = %s ORDER BY attempt", (run_id,)
        ).fetchall()
        return [run_record(row) for row in rows]

    def recent(self, limit: int, job: str | None) -> list[RunRecord]:
        where, args = ("WHERE job = %s", [job]) if job is not None else ("", [])
        rows = self._db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs {where}"
            " ORDER BY started_ms DESC, run_id DESC, attempt DESC LIMIT %s",
            [*args, limit],
        ).fetchall()
        return [run_record(row) for row in rows]

    def latest(self, job: str) -> RunRecord | None:
        row = self._db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE job = %s"
            " ORDER BY window_end_ms DESC, attempt DESC LIMIT 1",
            (job,),
        ).fetchone()
        return run_record(row) if row is not None else None

    def last_success(self, job: str) -> RunRecord | None:
        row = self._db.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE job = %s AND outcome = 'succeeded'"
            " ORDER BY ended_ms DESC LIMIT 1",
            (job,),
        ).fetchone()
        return run_record(row) if row is not None else None

    def abandon(self, job: str, started_before_ms: int, now_ms: int, detail: str) -> int:
        cursor = self._db.execute(
            "UPDATE runs SET outcome = 'failed', ended_ms = %s, detail = %s"
            " WHERE job = %s AND outcome = 'running' AND started_ms < %s",
            (now_ms, detail, job, started_before_ms),
        )
        return cursor.rowcount


class PostgresBackend:
    """A ``store.contract.Backend`` on one psycopg connection (not in autocommit), whose schema is up to
    date (``migrate``). Use it from one thread: its worker's. ``close`` closes the connection."""

    def __init__(
        self, connection: Connection, *, message_log: bool = True, sealer: Sealer | None = None
    ) -> None:
        if connection.autocommit:
            raise StoreError("the PostgreSQL backend needs a connection with autocommit off")
        self.connection = connection
        found = connection.execute("SELECT to_regclass('outbox')::oid::bigint").fetchone()
        connection.rollback()
        if found is None or found[0] is None:
            raise StoreError("no lienthong schema in this PostgreSQL database: run `lienthong db upgrade`")
        self._db = _Db(connection, _ORDER_LOCK_SPACE | found[0])
        self.events = PostgresEvents(self._db, sealer)
        self.outbox = PostgresOutbox(self._db, sealer)
        self.ledger = PostgresLedger(self._db)
        self.mappings = PostgresMappings(self._db)
        self.payments = PostgresPayments(self._db, sealer)
        self.audit = PostgresAudit(self._db)
        self.runs = PostgresRuns(self._db)
        self.cursors = PostgresCursors(self._db)
        self.actions = PostgresActions(self._db)
        self.circuits = PostgresCircuits(self._db)
        self.log: PostgresLog | NoLog = PostgresLog(self._db) if message_log else NoLog()

    @property
    def broken(self) -> bool:
        """The connection is lost (the server restarted, a network cut): open another."""
        return self.connection.broken or self.connection.closed

    def begin(self) -> None:
        # psycopg opens the transaction with the first statement; a connection left in one is reset.
        if self.connection.info.transaction_status != TransactionStatus.IDLE:
            self.connection.rollback()
        self._db.holds_order_lock = False

    def commit(self) -> None:
        self._db.holds_order_lock = False
        self.connection.commit()

    def rollback(self) -> None:
        self._db.holds_order_lock = False
        if not self.connection.closed:
            self.connection.rollback()

    def close(self) -> None:
        self.connection.close()


# -- schema ------------------------------------------------------------------------------------------------
def migrate(connection: Connection) -> tuple[int | None, int]:
    """Create the schema, or bring an older one up to SCHEMA_VERSION, in one transaction; (old, new).

    An empty database (no ``schema_version`` table in the search path) is created: a dropped database
    cannot be told from a new one (decision 0010). A newer schema is refused. Nodes starting together
    take turns on an advisory lock.
    """
    try:
        return _migrate(connection)
    except psycopg.Error as exc:
        raise StoreError(f"cannot create or upgrade the PostgreSQL store: {exc}") from exc


def _migrate(connection: Connection) -> tuple[int | None, int]:
    with connection.transaction():
        connection.execute(_MIGRATION_LOCK)
        version = _version(connection)
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(
                f"the store's schema version is {version}, newer than this lienthong knows"
                f" ({SCHEMA_VERSION}); upgrade lienthong"
            )
        for older in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
            if older not in _MIGRATIONS:
                raise StoreError(
                    f"the store's schema version is {version}, and no PostgreSQL store of version {older}"
                    f" can be brought to {SCHEMA_VERSION}"
                )
            for step in _MIGRATIONS[older]:
                connection.execute(step)
        for statement in _SCHEMA.split(";"):
            connection.execute(statement)
        if version is None:
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
        elif version < SCHEMA_VERSION:
            connection.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
    return version, SCHEMA_VERSION


def upgrade(dsn: str) -> tuple[int | None, int]:
    """``lienthong db upgrade``: create or upgrade the schema at ``dsn``; (old version or None, new)."""
    with _connect(dsn) as connection:
        return migrate(connection)


def schema_version(dsn: str) -> int | None:
    """The schema version of the store at ``dsn``, or None when there is none (read only)."""
    with _connect(dsn) as connection:
        connection.read_only = True
        try:
            return _version(connection)
        except psycopg.Error as exc:
            raise StoreError(f"cannot read the PostgreSQL store's schema version: {exc}") from exc
        finally:
            with contextlib.suppress(psycopg.Error):
                connection.rollback()


def _version(connection: Connection) -> int | None:
    (table,) = connection.execute("SELECT to_regclass('schema_version')").fetchone() or (None,)
    if table is None:
        return None
    row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row is not None and row[0] is not None else None


def _connect(dsn: str, timeout_s: float = 10.0) -> Connection:
    try:
        connection = psycopg.connect(dsn, connect_timeout=max(1, round(timeout_s)))
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}".strip()) from exc
    _plan_each_time(connection)
    return connection


def _plan_each_time(connection: Connection) -> None:
    """Plan every statement for its own arrays. psycopg prepares a statement after five runs, and the
    server then may keep a generic plan chosen for the arrays of that time: after 3,000 one-event
    requests, batches of 100 ran at 2,800 events/s instead of 12,300 (measured through the bus)."""
    connection.execute("SET plan_cache_mode = force_custom_plan")
    connection.commit()


def open_backend(
    dsn: str, timeout_s: float = 10.0, *, message_log: bool = True, sealer: Sealer | None = None
) -> PostgresBackend:
    """One connection, its schema brought up to date: the store process's backend (``store.process``).

    Module-level, so that ``functools.partial(open_backend, dsn)`` pickles for the store's process."""
    connection = _connect(dsn, timeout_s)
    try:
        migrate(connection)
        return PostgresBackend(connection, message_log=message_log, sealer=sealer)
    except BaseException:
        connection.close()
        raise


# -- pool and runner ---------------------------------------------------------------------------------------
class PostgresPool:
    """A psycopg pool of ``size`` connections, opened by ``start`` (which also migrates), and its runner.

    ``init`` is accepted for the config's sake and changes nothing: an empty database is created on a
    first start whatever it says (decision 0010).
    """

    def __init__(
        self,
        dsn: str,
        *,
        size: int = 4,
        init: bool = False,
        timeout_s: float = 10.0,
        message_log: bool = True,
        sealer: Sealer | None = None,
    ) -> None:
        self.dsn = dsn
        self.message_log = message_log
        self.sealer = sealer
        self.size = size
        self.init = init
        self.timeout_s = timeout_s
        self._pool: ConnectionPool[Connection] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Bring the schema up to date, then open the pool; a second call does nothing."""
        with self._lock:
            if self._pool is not None:
                return
            with _connect(self.dsn, self.timeout_s) as connection:  # a clear error when none answers
                migrate(connection)
            pool: ConnectionPool[Connection] = ConnectionPool(
                self.dsn,
                min_size=self.size,
                max_size=self.size,
                open=False,
                timeout=self.timeout_s,
                name="lienthong-store",
                kwargs={"autocommit": False},
                configure=_plan_each_time,
            )
            try:
                pool.open(wait=True, timeout=self.timeout_s)
            except Exception as exc:
                pool.close()
                raise StoreUnavailable(f"cannot open {self.size} connections to PostgreSQL: {exc}") from exc
            self._pool = pool

    @property
    def closed(self) -> bool:
        return self._pool is None or self._pool.closed

    def backend(self) -> PostgresBackend:
        """A backend on a connection of the pool, until ``give_back``."""
        if self._pool is None:
            raise StoreError("the PostgreSQL pool is not open")
        connection = self._pool.getconn()
        try:
            return PostgresBackend(connection, message_log=self.message_log, sealer=self.sealer)
        except BaseException:
            self._pool.putconn(connection)
            raise

    def give_back(self, backend: PostgresBackend) -> None:
        """Return the backend's connection (the pool replaces a broken one)."""
        if self._pool is not None:
            with contextlib.suppress(Exception):
                backend.rollback()
            self._pool.putconn(backend.connection)

    def runner(self, *, max_batch: int = 512) -> PostgresRunner:
        return PostgresRunner(self, max_batch=max_batch)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()


class PostgresRunner:
    """``size`` worker threads, each with one pooled connection, taking units from one queue; each worker
    runs the units it finds waiting in one transaction (group commit, ``store.runner.execute``).

    A worker whose connection is lost answers its units StoreUnavailable (nothing was acknowledged) and
    takes another connection from the pool for the next ones.
    """

    def __init__(self, pool: PostgresPool, *, max_batch: int = 512, name: str = "lienthong-store") -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Op | object] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, args=(n,), name=f"{name}-{n}", daemon=True)
            for n in range(pool.size)
        ]
        self._started = False
        self._closed = False
        self._commits = [0] * pool.size  # per worker: each thread adds to its own

    @property
    def pid(self) -> int | None:
        return None

    @property
    def commits(self) -> int:
        return sum(self._commits)

    @property
    def healthy(self) -> bool:
        if self._closed:
            return True
        return not self._pool.closed and all(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        self._pool.start()
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    async def call(self, fn: Callable[[Tx], T]) -> T:
        if self._closed or not self._started:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(Op(fn, (loop, future)))
        return await future

    def close(self) -> None:
        """Finish queued units, then return the connections and close the pool. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        started = [thread for thread in self._threads if thread.is_alive()]
        for _ in started:
            self._queue.put(STOP)
        for thread in started:
            thread.join()
        self._pool.close()

    def _work(self, worker: int) -> None:
        backend: PostgresBackend | None = None
        try:
            while (batch := next_batch(self._queue, self._max_batch)) is not None:
                if backend is None:
                    try:
                        backend = self._pool.backend()
                    except Exception as exc:
                        unavailable = StoreUnavailable(f"no connection to PostgreSQL: {exc}")
                        for op in batch:
                            op.error = unavailable
                        answer(batch)
                        continue
                self._commits[worker] += execute(backend, batch)
                if backend.broken:
                    lost = StoreUnavailable("the connection to PostgreSQL was lost; nothing was stored")
                    for op in batch:
                        if op.error is not None and not isinstance(op.error, StoreUnavailable):
                            lost.__cause__ = op.error
                            op.error = lost
                    self._pool.give_back(backend)
                    backend = None
                answer(batch)
        finally:
            if backend is not None:
                self._pool.give_back(backend)
