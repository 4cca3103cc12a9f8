"""Signed tree heads of the message log, made by the node every N records or T seconds.

A checkpoint is the tree's size and root in a C2SP signed note (``checkpoints``), kept in the store with
the tree's frontier, so that the next one reads only the records appended since. Several nodes may make
one at once: the store keeps the first of each size (``units.add_log_checkpoint``), and they agree on
its root, since the records are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from lienthong.clock import Clock, now_ms
from lienthong.errors import StoreError
from lienthong.msglog.checkpoints import Checkpoint, SigningKey, sign_checkpoint
from lienthong.msglog.merkle import Tree, leaf_hashes
from lienthong.msglog.records import StoredCheckpoint
from lienthong.msglog.timestamps import Stamp, Timestamper, TimestampError
from lienthong.store import Store, units

log = logging.getLogger("lienthong.msglog")
PAGE = 10_000


class LogDamaged(Exception):
    """A record about to be signed is not as the node wrote it (written past the store): nothing is
    signed until a person has looked (``log verify``)."""


def _checked(page: list[tuple[int, bytes, str]], start: int) -> list[bytes]:
    """The page's leaves, once each record is seen to follow the one before, to hash to its stored leaf
    and to be UTF-8 text; LogDamaged naming the first that is not. A checkpoint signs these leaves: a
    record edited past the store is refused here, not signed."""
    computed = leaf_hashes(data for _, data, _ in page)
    for offset, ((index, data, leaf), hashed) in enumerate(zip(page, computed, strict=True)):
        if index != start + offset:
            raise LogDamaged(f"record {start + offset} is missing (the next is {index})")
        if not isinstance(leaf, str) or hashed.hex() != leaf:
            raise LogDamaged(f"record {index} does not hash to its stored leaf")
        try:
            data.decode()
        except UnicodeDecodeError:
            raise LogDamaged(f"record {index} is not UTF-8 text") from None
    return computed


@dataclass(frozen=True)
class CheckpointSettings:
    origin: str
    """The log's name, the first line of every checkpoint (``lienthong.<province>``, say)."""
    every: int = 1000
    """A checkpoint once this many records were appended since the last one..."""
    interval_s: float = 60.0
    """...or this many seconds after the last one, if any record was appended since."""
    max_unstamped_s: float = 0.0
    """How long records may wait for a timestamp before the node refuses new events (0: never)."""


class Checkpointer:
    def __init__(
        self,
        store: Store,
        key: SigningKey,
        settings: CheckpointSettings,
        *,
        clock: Clock,
        timestamper: Timestamper | None = None,
    ) -> None:
        self._store = store
        self.key = key
        self.origin = settings.origin
        self._settings = settings
        self._clock = clock
        self._timestamper = timestamper
        self._stopping = asyncio.Event()
        self._unstamped_since: float | None = None
        """When a checkpoint first went without a timestamp, since the last one that had one."""
        self._damage = ""
        """What the last checkpoint found damaged in the log ("": nothing), said once."""

    def refusal(self) -> str | None:
        """Why new events must be refused now (the log has waited too long for a timestamp), or None."""
        limit = self._settings.max_unstamped_s
        since = self._unstamped_since
        if not limit or since is None or self._clock() - since <= limit:
            return None
        return (
            f"the message log has had no timestamp from the TSA for {self._clock() - since:.0f} s"
            f" (message_log.timestamp.max_age_s {limit:g}): new events are refused until it has one"
        )

    async def _stamp(self, note: str) -> Stamp | None:
        """A timestamp of ``note``, or None (logged) when the TSA gives none; tracks how long since one."""
        if self._timestamper is None:
            return None
        try:
            stamp = await self._timestamper.stamp(note.encode())
        except TimestampError as exc:
            if self._unstamped_since is None:
                self._unstamped_since = self._clock()
            log.warning("message log checkpoint without a timestamp (retried at the next): %s", exc)
            return None
        self._unstamped_since = None
        return stamp

    async def checkpoint(self) -> StoredCheckpoint | None:
        """Sign the log as it stands, unless the latest checkpoint already covers it; the one kept."""
        latest = await self._store.run(units.log_checkpoints, 1)
        size = await self._store.run(units.log_size)
        tree = (
            Tree.resume(latest[0].size, [bytes.fromhex(h) for h in latest[0].frontier]) if latest else Tree()
        )
        if latest and size <= tree.size:
            if self._timestamper is not None and not latest[0].timestamp:  # the TSA failed it: again
                stamp = await self._stamp(latest[0].note)
                if stamp is not None:
                    await self._store.run(units.stamp_log_checkpoint, latest[0].size, stamp.token, _ms(stamp))
            return None
        while tree.size < size:
            page = await self._store.run(units.log_records, tree.size, min(PAGE, size - tree.size))
            if not page:
                break
            tree.add_leaves(_checked(page, tree.size))
        root = tree.root()
        note = sign_checkpoint(Checkpoint(self._settings.origin, tree.size, root), self.key)
        stamp = await self._stamp(note)
        made = StoredCheckpoint(
            tree.size,
            root.hex(),
            now_ms(self._clock),
            note,
            tuple(h.hex() for h in tree.frontier),
            stamp.token if stamp else "",
            _ms(stamp) if stamp else 0,
        )
        if await self._store.run(units.add_log_checkpoint, made):
            log.info("message log checkpoint: %d records, root %s", made.size, made.root[:16])
            return made
        return None  # another node signed this size first

    async def run(self) -> None:
        """Checkpoint every ``interval_s``, or sooner once ``every`` records are waiting, until ``stop``."""
        settings = self._settings
        last = self._clock()
        poll_s = min(settings.interval_s, 1.0)
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), poll_s)
            try:
                due = self._clock() - last >= settings.interval_s
                if not due:
                    latest = await self._store.run(units.log_checkpoints, 1)
                    waiting = await self._store.run(units.log_size) - (latest[0].size if latest else 0)
                    due = waiting >= settings.every
                due = due or (self._unstamped_since is not None and self._clock() - last >= poll_s * 10)
                if due:
                    await self.checkpoint()
                    last = self._clock()
            except StoreError as exc:
                log.warning("no message log checkpoint this time (the store): %s", exc)
            except LogDamaged as exc:
                if str(exc) != self._damage:  # once per damage found, not once per poll
                    log.error(  # noqa: TRY400 (the damage is the message; a traceback says nothing more)
                        "the message log is damaged, no checkpoint is signed: %s (run log verify)", exc
                    )
                self._damage = str(exc)
                last = self._clock()
            else:
                self._damage = ""

    def stop(self) -> None:
        self._stopping.set()

    async def aclose(self) -> None:
        if self._timestamper is not None:
            await self._timestamper.aclose()


def _ms(stamp: Stamp) -> int:
    return int(stamp.at.timestamp() * 1000)
