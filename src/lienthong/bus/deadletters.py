"""Dead letters: list them, see why they died, and replay them, with a dry run and a record of who and why.

A replay makes a dead letter pending again with a fresh attempt count and age. It keeps the mapping version
the row was planned with (``original``), or re-pins it to the version the config uses now (``current``):
the way to deliver rows a mapping bug killed, once the spec is fixed. The dry run maps each record with
the chosen version and reports what would happen, changing nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from lienthong.bus.routes import Mapper, Routes
from lienthong.clock import Clock, now_ms
from lienthong.errors import DeliveryError
from lienthong.model import Message, MessageView, Replay
from lienthong.observability.logs import fields
from lienthong.store import Store, units

MappingChoice = Literal["original", "current"]


@dataclass(frozen=True)
class ReplayPlan:
    """What replaying one dead letter would do: which mapping version, and whether it maps now."""

    message: MessageView
    mapping_hash: str | None
    problem: str | None  # why it would fail again at once (a mapping error), or None

    @property
    def changes_version(self) -> bool:
        return self.mapping_hash is not None and self.mapping_hash != self.message.mapping_hash


log = logging.getLogger("lienthong.bus.deadletters")


class DeadLetters:
    def __init__(self, store: Store, routes: Routes, mapper: Mapper, *, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._routes = routes
        self._mapper = mapper

    async def listing(self, destination: str | None = None, limit: int = 100) -> list[MessageView]:
        return await self._store.run(units.dead_letters, destination, limit)

    async def plan(
        self, message_ids: list[str] | None, *, destination: str | None = None, mapping: MappingChoice
    ) -> list[ReplayPlan]:
        """Plans for ``message_ids``, or for every dead letter (of ``destination``) when None."""
        if message_ids is None:
            messages = await self._store.run(units.dead_letters, destination, 1_000_000)
        else:
            found = [await self._store.run(units.message, i) for i in message_ids]
            missing = [i for i, m in zip(message_ids, found, strict=True) if m is None or m.status != "dead"]
            if missing:
                raise LookupError(f"not dead letters: {', '.join(missing)}")
            messages = [m for m in found if m is not None]
        return [await self._plan_one(m, mapping) for m in messages]

    async def replay(self, plans: list[ReplayPlan], *, by: str, reason: str) -> list[str]:
        """Replay the planned dead letters; returns the ids made pending again."""
        if not by.strip() or not reason.strip():
            raise ValueError("a replay needs who (by) and why (reason)")
        now = now_ms(self._clock)
        await self._store.run(units.save_mappings, self._routes.versions(), now)
        replays = [Replay(p.message.message_id, p.mapping_hash if p.changes_version else None) for p in plans]
        replayed = await self._store.run(units.replay, replays, by, reason, now)
        log.warning(
            "%d dead letters replayed by %s: %s (%s)",
            len(replayed),
            by,
            reason,
            ", ".join(replayed[:20]) + (f" and {len(replayed) - 20} more" if len(replayed) > 20 else ""),
            extra=fields(by=by),
        )
        return replayed

    async def _plan_one(self, message: MessageView, choice: MappingChoice) -> ReplayPlan:
        version = message.mapping_hash
        if choice == "current" and message.mapping:
            current = self._routes.current(message.mapping)
            version = current.hash if current is not None else version
        event = await self._store.run(units.stored_event, message.event_id)
        if event is None:  # cannot happen while the store's foreign key holds; say so rather than crash
            return ReplayPlan(message, version, "its event is missing from the store")
        trial = Message(
            message.message_id,
            message.destination,
            message.operation,
            message.dossier_code,
            0,
            message.created_ms,
            event,
            message.mapping or "",
            version or "",
        )
        try:
            await self._mapper.body(trial)
        except DeliveryError as exc:
            return ReplayPlan(message, version, exc.describe())
        return ReplayPlan(message, version, None)
