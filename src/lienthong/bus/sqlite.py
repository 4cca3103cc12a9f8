"""The embedded default store: SQLite in WAL mode.

The SQL is kept portable (``ON CONFLICT``, ``UPDATE ... FROM``, CTEs, partial indexes and savepoints all
exist in PostgreSQL); only the DDL's key types and the placeholder style differ between dialects.

Statements are set-wise: one multi-row ``INSERT ... VALUES (...), (...)`` rather than ``executemany``.
Python's sqlite3 releases the GIL around every row step; each step then has to win the GIL back from the
event loop thread, which can take a whole switch interval. Measured here: a store doing 21,800 events/s
alone fell to 50 events/s beside one busy Python thread with ``executemany``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import orjson

from lienthong.citizens.records import LookupRecord
from lienthong.errors import IdempotencyConflict, StoreError
from lienthong.model import (
    AttemptView,
    DestinationStats,
    IngestItem,
    IngestResult,
    LedgerEntry,
    MappingVersion,
    Message,
    MessageView,
    Outcome,
    Replay,
    StoredEvent,
)
from lienthong.payments.records import CallbackRecord, PaymentFinding, PaymentRecord, Settlement
from lienthong.payments.state import Verdict, judge

SCHEMA_VERSION = 3

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
    message_ids     TEXT NOT NULL,
    received_ms     BIGINT NOT NULL,
    caller          TEXT NOT NULL DEFAULT ''
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
    last_http_status INTEGER,
    mapping          TEXT,
    mapping_hash     TEXT,
    replayed_ms      BIGINT,
    replay_base      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_key ON outbox (destination, dossier_code, seq)
    WHERE status IN ('pending', 'inflight');
CREATE INDEX IF NOT EXISTS outbox_dead ON outbox (destination) WHERE status = 'dead';
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
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
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
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
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
    updated_ms       BIGINT NOT NULL
);
"""

_LEDGER_COLUMNS = (
    "dossier_code, unit_code, last_event_id, last_event_type, occurred_ms, status, procedure_code, channel, "
    "level, received_at, due_at, returned_at, fees_total, fees_paid, result_sha256, updated_ms"
)
# Later events win; an event older than what the ledger reflects changes nothing. Fields an event does not
# carry keep their previous value.
_LEDGER_UPSERT = (
    f"INSERT INTO dossiers ({_LEDGER_COLUMNS})",
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
    updated_ms = excluded.updated_ms
WHERE excluded.occurred_ms >= dossiers.occurred_ms
""",
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
    "WITH v (message_id, status, attempts, updated_ms, next_attempt_ms, last_error, last_http_status) AS (",
    """)
UPDATE outbox SET status = v.status, attempts = v.attempts, updated_ms = v.updated_ms,
    next_attempt_ms = v.next_attempt_ms, last_error = v.last_error, last_http_status = v.last_http_status
FROM v WHERE outbox.message_id = v.message_id""",
)
_KEEP_FIRST = "ON CONFLICT (hash) DO NOTHING"
_LOOKUP_COLUMNS = "request_id, at_ms, caller, official_id, purpose, subject_ref, form, outcome"
_PAYMENT_COLUMNS = ", ".join(f.name for f in fields(PaymentRecord))
_CALLBACK_COLUMNS = ", ".join(f.name for f in fields(CallbackRecord))
_FINDING_COLUMNS = "at_ms, kind, reference, channel, transaction_id, amount, detail"
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
}
_MAX_PARAMS = 30_000  # SQLite's default limit is 32,766 parameters in one statement

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
    "mapping",
    "mapping_hash",
)

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
    ORDER BY o.seq
    LIMIT ?
)
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
        """Create the schema, or bring an older one up to SCHEMA_VERSION, in one transaction."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._upgrade()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _upgrade(self) -> None:
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        row = self._db.execute("SELECT version FROM schema_version").fetchone() if exists else None
        version = row[0] if row is not None else None
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(
                f"the store's schema version is {version}, newer than this lienthong knows"
                f" ({SCHEMA_VERSION}); upgrade lienthong"
            )
        for older in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
            for step in _MIGRATIONS.get(older, ()):
                self._db.execute(step)
        for statement in _statements(_SCHEMA):
            self._db.execute(statement)
        if version is None:
            self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif version < SCHEMA_VERSION:
            self._db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    # -- transactions (driven by the committer) --------------------------------------------------------
    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._db.close()

    # -- operations ------------------------------------------------------------------------------------
    def recover(self) -> int:
        cursor = self._db.execute("UPDATE outbox SET status = 'pending' WHERE status = 'inflight'")
        return cursor.rowcount

    def ingest(
        self, requests: list[list[IngestItem]], now_ms: int
    ) -> list[list[IngestResult] | IdempotencyConflict]:
        # Set-wise: one look-up for events seen before, then one insert per table for all requests.
        known = self._known([item.event.event_id for items in requests for item in items])
        answers: list[list[IngestResult] | IdempotencyConflict] = []
        fresh: list[IngestItem] = []
        for items in requests:
            answer = _resolve(items, known)
            if isinstance(answer, IdempotencyConflict):
                answers.append(answer)
            else:
                answers.append(answer[0])
                fresh += answer[1]
        self._rows(_EVENT_INSERT, [_event_row(item, now_ms) for item in fresh])
        stamps = ("pending", now_ms, now_ms, now_ms)  # status, created, updated, next attempt
        outbox = [
            (*d, item.event.event_id, item.event.dossier_code, *stamps)
            for item in fresh
            for d in item.deliveries
        ]
        self._rows(_OUTBOX_INSERT, outbox)
        self._rows(_LEDGER_UPSERT, [_ledger_row(entry, now_ms) for entry in _latest_per_dossier(fresh)])
        return answers

    def _rows(self, statement: tuple[str, str], rows: list[tuple[Any, ...]]) -> None:
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
            self._db.execute(f"{head} VALUES {values} {tail}", [v for row in chunk for v in row])

    def _known(self, event_ids: list[str]) -> dict[str, _Seen]:
        """Events already stored among ``event_ids``: their payload hash, message ids and caller."""
        known: dict[str, _Seen] = {}
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            rows = self._db.execute(
                "SELECT event_id, payload_sha256, message_ids, caller FROM events"
                f" WHERE event_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            known.update(
                (event_id, (sha, tuple(orjson.loads(ids)), caller)) for event_id, sha, ids, caller in rows
            )
        return known

    def claim(self, now_ms: int, limit: int) -> list[Message]:
        (found,) = self._db.execute(_CLAIM, (now_ms, limit)).fetchone()
        rows = orjson.loads(found)
        if not rows:
            return []
        seqs = [r[0] for r in rows]
        marks = ", ".join("?" * len(seqs))
        self._db.execute(
            f"UPDATE outbox SET status = 'inflight', updated_ms = ? WHERE seq IN ({marks})", [now_ms, *seqs]
        )
        return [_claimed(row) for row in rows]

    def complete(self, outcomes: list[Outcome]) -> None:
        updates = [
            (
                o.message_id,
                "pending" if o.kind == "retry" else o.kind,
                o.attempt,
                o.finished_ms,
                o.next_attempt_ms if o.next_attempt_ms is not None else o.finished_ms,
                *o.detail,
            )
            for o in outcomes
        ]
        self._rows(_OUTCOME_UPDATE, updates)
        attempts = [
            (o.message_id, o.attempt, o.started_ms, o.finished_ms - o.started_ms, o.kind, *o.detail)
            for o in outcomes
        ]
        self._rows(_ATTEMPT_INSERT, attempts)
        raised = [[item] for o in outcomes for item in o.raises]
        if raised:
            # Ids of raised events derive from the outcome (``failed:<message>:<attempt>``): a repeat is a
            # duplicate, never a conflict, so every answer is a result.
            self.ingest(raised, max(o.finished_ms for o in outcomes))

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
        (caller,) = self._db.execute(
            "SELECT caller FROM events WHERE event_id = ?", (fields["event_id"],)
        ).fetchone() or ("",)
        return MessageView(**fields, caller=caller, history=tuple(AttemptView(*h) for h in history))

    def stats(self) -> list[DestinationStats]:
        # Two index-backed scans: undelivered rows through outbox_key, dead letters through outbox_dead.
        rows = self._db.execute(
            "SELECT destination, status, COUNT(*), MIN(created_ms) FROM outbox"
            " WHERE status IN ('pending', 'inflight') GROUP BY destination, status"
            " UNION ALL SELECT destination, 'dead', COUNT(*), NULL FROM outbox WHERE status = 'dead'"
            " GROUP BY destination"
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

    def save_mappings(self, versions: list[MappingVersion], now_ms: int) -> None:
        rows = [(v.hash, v.name, orjson.dumps(v.document).decode(), now_ms) for v in versions]
        self._rows(("INSERT INTO mapping_versions (hash, name, document, first_seen_ms)", _KEEP_FIRST), rows)

    def record_lookups(self, records: list[LookupRecord]) -> None:
        self._rows(
            (f"INSERT INTO lookups ({_LOOKUP_COLUMNS})", ""),
            [tuple(getattr(r, name) for name in _LOOKUP_COLUMNS.split(", ")) for r in records],
        )

    def save_payment(self, payment: PaymentRecord) -> None:
        # A payment asked for again (an INIT retried or replayed) refreshes its pay URL and nothing else:
        # its state belongs to the callbacks, and must never go back to "initiated".
        columns = _PAYMENT_COLUMNS.split(", ")
        self._db.execute(
            f"INSERT INTO payments ({_PAYMENT_COLUMNS}) VALUES ({', '.join('?' * len(columns))})"
            " ON CONFLICT (reference) DO UPDATE SET pay_url = excluded.pay_url"
            " WHERE payments.status = 'initiated'",
            [getattr(payment, c) for c in columns],
        )

    def payment(self, reference: str) -> PaymentRecord | None:
        row = self._db.execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE reference = ?", (reference,)
        ).fetchone()
        return PaymentRecord(*row) if row is not None else None

    def record_callback(self, record: CallbackRecord) -> None:
        columns = _CALLBACK_COLUMNS.split(", ")
        self._db.execute(
            f"INSERT INTO payment_callbacks ({_CALLBACK_COLUMNS}) VALUES ({', '.join('?' * len(columns))})",
            [getattr(record, c) for c in columns],
        )

    def settle_payment(self, settlement: Settlement, now_ms: int) -> Verdict:
        claim, record, confirmed = settlement
        current = self.payment(claim.reference)
        verdict = judge(current, claim)
        if verdict == "accepted" and claim.status == "paid":
            verdict = self._confirm(confirmed, now_ms)
        elif verdict == "repeat" and claim.status == "paid" and confirmed is not None:
            # The same transaction again: the stored event's content, or other content (another time,
            # another bank), refused like any reused event id. Nothing is stored either way.
            seen = self._known([confirmed.event.event_id]).get(confirmed.event.event_id)
            if seen is not None and seen[0] != confirmed.event.payload_sha256:
                verdict = "transaction_reused"
        if verdict == "accepted":
            self._db.execute(
                "UPDATE payments SET status = ?, transaction_id = ?, channel = ?, updated_ms = ?"
                " WHERE reference = ?",
                (claim.status, claim.transaction_id, claim.channel, now_ms, claim.reference),
            )
        elif verdict == "duplicate_payment":
            assert current is not None
            detail = (
                f"{claim.amount} paid again through {claim.channel} ({claim.transaction_id}) for a reference"
                f" already paid through {current.channel} ({current.transaction_id})"
            )
            self._db.execute(
                f"INSERT INTO payment_findings ({_FINDING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (kind, channel, transaction_id) DO NOTHING",
                (now_ms, verdict, claim.reference, claim.channel, claim.transaction_id, claim.amount, detail),
            )
        self.record_callback(replace(record, verdict=verdict))
        return verdict

    def _confirm(self, confirmed: IngestItem | None, now_ms: int) -> Verdict:
        """Store the ``payment.confirmed`` event of a payment being paid."""
        if confirmed is None:  # the payment appeared after the caller looked: it asks again
            return "unknown_reference"
        (answer,) = self.ingest([[confirmed]], now_ms)
        return "transaction_reused" if isinstance(answer, IdempotencyConflict) else "accepted"

    def callbacks(self, limit: int, reference: str | None = None) -> list[CallbackRecord]:
        where, args = ("WHERE reference = ?", [reference]) if reference is not None else ("", [])
        rows = self._db.execute(
            f"SELECT {_CALLBACK_COLUMNS} FROM payment_callbacks {where} ORDER BY id DESC LIMIT ?",
            [*args, limit],
        ).fetchall()
        return [CallbackRecord(*row) for row in rows]

    def payment_findings(self, limit: int) -> list[PaymentFinding]:
        rows = self._db.execute(
            f"SELECT {_FINDING_COLUMNS} FROM payment_findings ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [PaymentFinding(*row) for row in rows]

    def lookups(self, limit: int) -> list[LookupRecord]:
        rows = self._db.execute(
            f"SELECT {_LOOKUP_COLUMNS} FROM lookups ORDER BY at_ms DESC, rowid DESC LIMIT ?", (limit,)
        ).fetchall()
        return [LookupRecord(*row) for row in rows]

    def mapping_version(self, mapping_hash: str) -> MappingVersion | None:
        row = self._db.execute(
            "SELECT hash, name, document FROM mapping_versions WHERE hash = ?", (mapping_hash,)
        ).fetchone()
        return MappingVersion(row[0], row[1], orjson.loads(row[2])) if row is not None else None

    def dead_letters(self, destination: str | None, limit: int) -> list[MessageView]:
        where = "status = 'dead'" + (" AND destination = ?" if destination is not None else "")
        args: list[Any] = [destination] if destination is not None else []
        rows = self._db.execute(
            f"SELECT {', '.join(_MESSAGE_FIELDS)} FROM outbox WHERE {where} ORDER BY seq LIMIT ?",
            [*args, limit],
        ).fetchall()
        return [MessageView(**dict(zip(_MESSAGE_FIELDS, row, strict=True))) for row in rows]

    def stored_event(self, event_id: str) -> StoredEvent | None:
        row = self._db.execute(
            "SELECT event_id, type, unit_code, occurred_at, payload, caller FROM events WHERE event_id = ?",
            (event_id,),
        ).fetchone()
        if row is None:
            return None
        return StoredEvent(row[0], row[1], row[2], row[3], orjson.loads(row[4])["dossier"], row[5])

    def replay(self, replays: list[Replay], *, by: str, reason: str, now_ms: int) -> list[str]:
        done: list[str] = []
        for item in replays:
            cursor = self._db.execute(
                "UPDATE outbox SET status = 'pending', replay_base = attempts, next_attempt_ms = ?,"
                " updated_ms = ?, replayed_ms = ?, mapping_hash = COALESCE(?, mapping_hash)"
                " WHERE message_id = ? AND status = 'dead'",
                (now_ms, now_ms, now_ms, item.mapping_hash, item.message_id),
            )
            if cursor.rowcount:
                done.append(item.message_id)
        self._rows(
            ("INSERT INTO replays (message_id, replayed_ms, by_whom, reason, mapping_hash)", ""),
            [(i.message_id, now_ms, by, reason, i.mapping_hash) for i in replays if i.message_id in done],
        )
        return done


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


_Seen = tuple[str, tuple[str, ...], str]
"""An event already stored: its payload hash, message ids and caller."""


def _resolve(
    items: list[IngestItem], known: dict[str, _Seen]
) -> tuple[list[IngestResult], list[IngestItem]] | IdempotencyConflict:
    """One request's results and the items it adds, or its conflict. ``known`` learns what it adds, so a
    later request repeating an event sees a duplicate; a conflicting request adds nothing.

    An event id another caller sent is a conflict whatever the content: a caller never learns of, nor
    rides on, another's events (events stored before callers were recorded have caller '')."""
    results: list[IngestResult] = []
    fresh: list[IngestItem] = []
    added: list[str] = []
    for item in items:
        event_id, sha, caller = item.event.event_id, item.event.payload_sha256, item.event.caller
        seen = known.get(event_id)
        if seen is not None:
            if seen[0] != sha or (seen[2] and seen[2] != caller):
                for undo in added:
                    del known[undo]
                return IdempotencyConflict(event_id)
            results.append(IngestResult(event_id, seen[1], duplicate=True))
            continue
        ids = tuple(d.message_id for d in item.deliveries)
        known[event_id] = (sha, ids, caller)
        added.append(event_id)
        fresh.append(item)
        results.append(IngestResult(event_id, ids, duplicate=False))
    return results, fresh


def _latest_per_dossier(items: list[IngestItem]) -> list[LedgerEntry]:
    """One ledger row per dossier, the latest event's: one statement may not upsert the same row twice."""
    latest: dict[str, LedgerEntry] = {}
    for item in items:
        entry = item.ledger
        seen = latest.get(entry.dossier_code)
        if seen is None or entry.occurred_ms >= seen.occurred_ms:
            latest[entry.dossier_code] = entry
    return list(latest.values())


def _event_row(item: IngestItem, now_ms: int) -> tuple[Any, ...]:
    message_ids = orjson.dumps([d.message_id for d in item.deliveries]).decode()
    return (*item.event, message_ids, now_ms)


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


def _claimed(row: Sequence[Any]) -> Message:
    event = StoredEvent(row[7], row[8], row[9], row[10], row[11]["dossier"], row[15])
    return Message(
        row[1], row[2], row[3], row[4], row[5], row[6], event, row[12] or "", row[13] or "", row[14]
    )


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
