"""The message log's reads and checkpoints in SQL, the same on SQLite and PostgreSQL but for the
placeholder; each backend adds ``append`` (a multi-row insert its own way, PostgreSQL under a lock)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lienthong.msglog.records import StoredCheckpoint
from lienthong.store.rows import CHECKPOINT_COLUMNS, checkpoint_row, stored_checkpoint

Execute = Callable[..., Any]


class SqlLogReads:
    """``store.contract.MessageLog`` but ``append``: over ``execute(query, params)``, placeholder ``ph``."""

    def __init__(self, execute: Execute, ph: str) -> None:
        self._execute = execute
        self._ph = ph

    def _rows(self, query: str, params: Sequence[Any]) -> list[Any]:
        rows: list[Any] = self._execute(query.replace("?", self._ph), params).fetchall()
        return rows

    def size(self) -> int:
        (row,) = self._rows("SELECT max(seq) FROM log_records", ())
        return 0 if row[0] is None else int(row[0]) + 1

    def read(self, start: int, limit: int) -> list[tuple[int, bytes, str]]:
        rows = self._rows(
            "SELECT seq, data, leaf FROM log_records WHERE seq >= ? ORDER BY seq LIMIT ?", (start, limit)
        )
        return [(int(seq), data.encode(), leaf) for seq, data, leaf in rows]

    def about(self, subject: str, limit: int) -> list[tuple[int, bytes]]:
        rows = self._rows(
            "SELECT seq, data FROM log_records WHERE subject = ? ORDER BY seq LIMIT ?", (subject, limit)
        )
        return [(int(seq), data.encode()) for seq, data in rows]

    def between(self, start_ms: int, end_ms: int, after: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self._rows(
            "SELECT seq, data FROM log_records WHERE at_ms >= ? AND at_ms < ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (start_ms, end_ms, after, limit),
        )
        return [(int(seq), data.encode()) for seq, data in rows]

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
