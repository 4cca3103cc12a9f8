"""What the SQL stores do alike but for the placeholder: the message log's reads and checkpoints (each
backend adds ``append``, a multi-row insert its own way, PostgreSQL under a lock), the payloads' purge
and resealing, and payments (each backend adds ``hold``, a row lock its own way)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from lienthong.msglog.records import StoredCheckpoint
from lienthong.payments.records import CallbackRecord, Claim, PaymentFinding, PaymentRecord
from lienthong.sealing import Sealer
from lienthong.store.contract import PURGED
from lienthong.store.rows import (
    CALLBACK_COLUMNS,
    CHECKPOINT_COLUMNS,
    FINDING_COLUMNS,
    PAYMENT_COLUMNS,
    checkpoint_row,
    payment_record,
    payment_row,
    stored_checkpoint,
)

Execute = Callable[..., Any]


class SqlLogReads:
    """``store.contract.MessageLog`` but ``append``: over ``execute(query, params)``, placeholder ``ph``;
    ``data_bytes``: the SQL that gives a record's text as its UTF-8 bytes (the driver then hands over bytes
    with no Python step a row: ``log verify`` reads every record)."""

    def __init__(self, execute: Execute, ph: str, data_bytes: str) -> None:
        self._execute = execute
        self._ph = ph
        self._data_bytes = data_bytes

    def _rows(self, query: str, params: Sequence[Any]) -> list[Any]:
        rows: list[Any] = self._execute(query.replace("?", self._ph), params).fetchall()
        return rows

    def size(self) -> int:
        (row,) = self._rows("SELECT max(seq) FROM log_records", ())
        return 0 if row[0] is None else int(row[0]) + 1

    def read(self, start: int, limit: int) -> list[tuple[int, bytes, str]]:
        return self._rows(
            f"SELECT seq, {self._data_bytes}, leaf FROM log_records WHERE seq >= ? ORDER BY seq LIMIT ?",
            (start, limit),
        )

    def about(self, subject: str, limit: int) -> list[tuple[int, bytes]]:
        return self._rows(
            f"SELECT seq, {self._data_bytes} FROM log_records WHERE subject = ? ORDER BY seq LIMIT ?",
            (subject, limit),
        )

    def between(self, start_ms: int, end_ms: int, after: int, limit: int) -> list[tuple[int, bytes]]:
        return self._rows(
            f"SELECT seq, {self._data_bytes} FROM log_records WHERE at_ms >= ? AND at_ms < ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (start_ms, end_ms, after, limit),
        )

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        cursor = self._execute(
            f"INSERT INTO log_checkpoints ({CHECKPOINT_COLUMNS}) VALUES ({', '.join([self._ph] * 7)})"
            " ON CONFLICT (size) DO NOTHING",
            checkpoint_row(checkpoint),
        )
        return bool(cursor.rowcount)

    def checkpoints(self, limit: int, before_size: int | None = None) -> list[StoredCheckpoint]:
        below = 2**62 if before_size is None else before_size
        rows = self._rows(
            f"SELECT {CHECKPOINT_COLUMNS} FROM log_checkpoints WHERE size < ? ORDER BY size DESC LIMIT ?",
            (below, limit),
        )
        return [stored_checkpoint(row) for row in rows]

    def stamp(self, size: int, timestamp: str, timestamped_ms: int) -> None:
        self._execute(
            "UPDATE log_checkpoints SET timestamp = ?, timestamped_ms = ? WHERE size = ?".replace(
                "?", self._ph
            ),
            (timestamp, timestamped_ms, size),
        )


def purge_payloads(
    execute: Execute, ph: str, after: str, limit: int, received_before_ms: int
) -> tuple[str | None, int]:
    """``Events.purge`` in SQL (placeholder ``ph``). An event's messages are found by their ids, which it
    lists, through the outbox's unique index: the outbox has no index by event, and a scan of it per page
    would grow with the whole outbox."""
    rows = execute(
        f"SELECT event_id, received_ms, payload = {ph}, message_ids FROM events WHERE event_id > {ph}"
        f" ORDER BY event_id LIMIT {ph}",
        (PURGED, after, limit),
    ).fetchall()
    if not rows:
        return None, 0
    old = {
        event_id: orjson.loads(ids)
        for event_id, received_ms, purged, ids in rows
        if received_ms < received_before_ms and not purged
    }
    ids = [message_id for listed in old.values() for message_id in listed]
    open_ids: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found = execute(
            f"SELECT message_id FROM outbox WHERE message_id IN ({', '.join([ph] * len(chunk))})"
            " AND status IN ('pending', 'inflight', 'dead')",
            chunk,
        ).fetchall()
        open_ids.update(row[0] for row in found)
    settled = [event_id for event_id, listed in old.items() if not open_ids.intersection(listed)]
    if settled:
        execute(
            f"UPDATE events SET payload = {ph} WHERE event_id IN ({', '.join([ph] * len(settled))})",
            (PURGED, *settled),
        )
    return rows[-1][0], len(settled)


def reseal_payloads(
    execute: Execute, ph: str, sealer: Sealer | None, after: str, limit: int
) -> tuple[str | None, int]:
    """``Events.reseal`` in SQL (placeholder ``ph``)."""
    return _reseal(execute, ph, sealer, ("events", "event_id", "payload", ""), after=after, limit=limit)


def reseal_payment_dossiers(
    execute: Execute, ph: str, sealer: Sealer | None, after: str, limit: int
) -> tuple[str | None, int]:
    """``Payments.reseal`` in SQL (placeholder ``ph``): the dossiers payments carry, sealed anew."""
    return _reseal(
        execute, ph, sealer, ("payments", "reference", "dossier", "payment "), after=after, limit=limit
    )


def _reseal(
    execute: Execute,
    ph: str,
    sealer: Sealer | None,
    where: tuple[str, str, str, str],
    *,
    after: str,
    limit: int,
) -> tuple[str | None, int]:
    """A page of ``where`` (table, key column, sealed column, the additional data's prefix before the key)
    after key ``after``, sealed anew with the current key where sealed with another or none."""
    table, key, column, prefix = where
    rows = execute(
        f"SELECT {key}, {column} FROM {table} WHERE {key} > {ph} ORDER BY {key} LIMIT {ph}", (after, limit)
    ).fetchall()
    if sealer is None or not rows:
        return (rows[-1][0] if rows else None), 0
    # Plaintext is what this seals: read as it is, even when ``refuse_plaintext`` refuses it to readers.
    # Retention's mark stays plaintext: the purge knows a purged row by it.
    changed = [
        (sealer.seal(prefix + k, stored if kid is None else sealer.open(prefix + k, stored)), k)
        for k, stored in rows
        if (kid := sealer.sealed_with(stored)) != sealer.current and stored != PURGED
    ]
    for sealed, k in changed:
        execute(f"UPDATE {table} SET {column} = {ph} WHERE {key} = {ph}", (sealed, k))
    return rows[-1][0], len(changed)


class SqlPayments:
    """``store.contract.Payments`` but ``hold`` (each backend locks the row its own way): over
    ``execute(query, params)``, placeholder ``ph``; dossiers sealed with ``sealer``."""

    def __init__(self, execute: Execute, ph: str, sealer: Sealer | None) -> None:
        self._execute = execute
        self._ph = ph
        self._sealer = sealer

    def _run(self, query: str, params: Sequence[Any]) -> Any:
        return self._execute(query.replace("?", self._ph), params)

    def _rows(self, query: str, params: Sequence[Any]) -> list[Any]:
        rows: list[Any] = self._run(query, params).fetchall()
        return rows

    def save(self, payment: PaymentRecord) -> None:
        # A payment asked for again (an INIT retried or replayed) refreshes its pay URL and nothing else:
        # its state belongs to the callbacks, and must never go back to "initiated".
        columns = PAYMENT_COLUMNS.split(", ")
        self._run(
            f"INSERT INTO payments ({PAYMENT_COLUMNS}) VALUES ({', '.join('?' * len(columns))})"
            " ON CONFLICT (reference) DO UPDATE SET pay_url = excluded.pay_url"
            " WHERE payments.status = 'initiated'",
            payment_row(payment, self._sealer),
        )

    def get(self, reference: str) -> PaymentRecord | None:
        rows = self._rows(f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE reference = ?", (reference,))
        return payment_record(rows[0], self._sealer) if rows else None

    def move(self, claim: Claim, now_ms: int) -> None:
        self._run(
            "UPDATE payments SET status = ?, transaction_id = ?, channel = ?, updated_ms = ?"
            " WHERE reference = ?",
            (claim.status, claim.transaction_id, claim.channel, now_ms, claim.reference),
        )

    def add_finding(self, finding: PaymentFinding) -> None:
        self._run(
            f"INSERT INTO payment_findings ({FINDING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (kind, channel, transaction_id) DO NOTHING",
            [getattr(finding, c) for c in FINDING_COLUMNS.split(", ")],
        )

    def record_callback(self, record: CallbackRecord) -> None:
        columns = CALLBACK_COLUMNS.split(", ")
        self._run(
            f"INSERT INTO payment_callbacks ({CALLBACK_COLUMNS}) VALUES ({', '.join('?' * len(columns))})",
            [getattr(record, c) for c in columns],
        )

    def callbacks(self, limit: int, reference: str | None) -> list[CallbackRecord]:
        where, args = ("WHERE reference = ?", [reference]) if reference is not None else ("", [])
        rows = self._rows(
            f"SELECT {CALLBACK_COLUMNS} FROM payment_callbacks {where} ORDER BY id DESC LIMIT ?",
            [*args, limit],
        )
        return [CallbackRecord(*row) for row in rows]

    def findings(self, limit: int) -> list[PaymentFinding]:
        rows = self._rows(
            f"SELECT {FINDING_COLUMNS} FROM payment_findings ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [PaymentFinding(*row) for row in rows]

    def paid_between(self, start_ms: int, end_ms: int) -> list[PaymentRecord]:
        rows = self._rows(
            f"SELECT {PAYMENT_COLUMNS} FROM payments"
            " WHERE status = 'paid' AND updated_ms >= ? AND updated_ms < ?",
            (start_ms, end_ms),
        )
        return [payment_record(row, self._sealer) for row in rows]

    def unsettled(self, before_ms: int, limit: int) -> list[PaymentRecord]:
        rows = self._rows(
            f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE status IN ('initiated', 'pending')"
            " AND updated_ms < ? ORDER BY updated_ms, reference LIMIT ?",
            (before_ms, limit),
        )
        return [payment_record(row, self._sealer) for row in rows]

    def reseal(self, after: str, limit: int) -> tuple[str | None, int]:
        return reseal_payment_dossiers(self._execute, self._ph, self._sealer, after, limit)
