"""Dead letters: list them, see why they died, and replay them, with a dry run and a record of who and why.

A replay makes a dead letter pending again with a fresh attempt count and age. It keeps the mapping version
the row was planned with (``original``), or re-pins it to the version the config uses now (``current``):
the way to deliver rows a mapping bug killed, once the spec is fixed. The dry run maps each record with
the chosen version and reports what would happen, changing nothing.

A discard sets a dead letter aside for good (it was delivered by hand, or is no longer wanted); a
reveal shows a message's errors with their personal data unmasked. Replays, discards and reveals are
operators' actions: each is recorded in the store with who, when and why, and logged at WARNING.
Dead letters are listed by destination, by error class (``ERROR_CLASSES``, a bounded classification of
the last error) and by when they died.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal

from lienthong.bus.routes import Mapper, Routes
from lienthong.clock import Clock, now_ms
from lienthong.errors import DeliveryError
from lienthong.model import ERROR_CLASSES, Message, MessageView, Replay
from lienthong.observability.logs import fields, redact
from lienthong.store import Store, units
from lienthong.store.contract import OperatorAction

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


_CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("mapping", re.compile(r"\[mapping [^\]]*\]|could not be translated")),
    ("timeout", re.compile(r"did not answer in time|timed? ?out", re.IGNORECASE)),
    ("unreachable", re.compile(r"cannot reach|connection refused", re.IGNORECASE)),
    ("http_5xx", re.compile(r"\bhttp 5\d\d\b")),
    ("http_4xx", re.compile(r"\bhttp 4\d\d\b")),
    ("refused", re.compile(r"refused the request|remote code")),
    (
        "protocol",
        re.compile(r"not SOAP|cannot be decoded|does not match the WSDL|answered too much|not what"),
    ),
)
MAX_LISTED = 100_000
"""The most dead letters one listing or ``--all`` replay reads from the store."""


def error_class(error: str | None) -> str:
    """The class (one of ``ERROR_CLASSES``) of a dead letter's last error."""
    for name, pattern in _CLASSES:
        if error and pattern.search(error):
            return name
    return "other"


@dataclass(frozen=True)
class Filter:
    """Which dead letters: of one destination, of one error class, dead in [since_ms, until_ms)."""

    destination: str | None = None
    error_class: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


def masked(message: MessageView) -> MessageView:
    """``message`` with the personal data in its errors masked (``observability.logs.redact``)."""
    history = tuple(replace(a, error=redact(a.error) if a.error else a.error) for a in message.history)
    error = redact(message.last_error) if message.last_error else message.last_error
    return replace(message, last_error=error, history=history)


class RateLimit:
    """At most ``per_s`` dead letters replayed a second: a replay of thousands must not fall on a
    destination that has only just come back all at once. ``sleep`` is injected for tests."""

    def __init__(self, per_s: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if not per_s > 0:
            raise ValueError("a replay rate must be more than 0 a second")
        self.batch = max(1, math.floor(per_s))
        self.pause_s = self.batch / per_s
        self._sleep = sleep

    async def pause(self) -> None:
        await self._sleep(self.pause_s)


class DeadLetters:
    def __init__(self, store: Store, routes: Routes, mapper: Mapper, *, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._routes = routes
        self._mapper = mapper

    async def listing(
        self, destination: str | None = None, limit: int = 100, *, where: Filter | None = None
    ) -> list[MessageView]:
        """Dead letters, oldest first: of ``destination``, or as ``where`` picks them."""
        if where is None:
            return await self._store.run(units.dead_letters, destination, limit)
        wanted = where.error_class
        if wanted is not None and wanted not in ERROR_CLASSES:
            raise LookupError(f"unknown error class {wanted!r} (known: {', '.join(ERROR_CLASSES)})")
        found = await self._store.run(
            units.dead_letters_between,
            where.destination,
            where.since_ms,
            where.until_ms,
            limit if wanted is None else MAX_LISTED,
        )
        return [m for m in found if wanted is None or error_class(m.last_error) == wanted][:limit]

    async def show(self, message_id: str, *, reveal_by: str | None = None, reason: str = "") -> MessageView:
        """One message with every attempt, its personal data masked; unmasked for ``reveal_by``, which
        is recorded (who, when, which message, why) and logged. LookupError: no such message."""
        message = await self._store.run(units.message, message_id)
        if message is None:
            raise LookupError(f"no message {message_id}")
        if reveal_by is None:
            return masked(message)
        if not reveal_by.strip():
            raise ValueError("a reveal needs who (by)")
        action = OperatorAction(now_ms(self._clock), reveal_by, "reveal", message_id, reason)
        await self._store.run(units.record_action, action)
        log.warning(
            "personal data of message %s revealed to %s: %s",
            message_id,
            reveal_by,
            reason or "no reason given",
            extra=fields(by=reveal_by, message_id=message_id),
        )
        return message

    async def discard(self, message_ids: list[str], *, by: str, reason: str) -> list[str]:
        """Discard dead letters for good, recording who and why. LookupError names ids that are not
        dead letters (nothing is discarded then); ValueError: no who or no why."""
        if not by.strip() or not reason.strip():
            raise ValueError("a discard needs who (by) and why (reason)")
        found = [await self._store.run(units.message, i) for i in message_ids]
        missing = [i for i, m in zip(message_ids, found, strict=True) if m is None or m.status != "dead"]
        if missing:
            raise LookupError(f"not dead letters: {', '.join(missing)}")
        done = await self._store.run(units.discard, message_ids, by, reason, now_ms(self._clock))
        log.warning(
            "%d dead letters discarded by %s: %s (%s)",
            len(done),
            by,
            reason,
            _some(done),
            extra=fields(by=by),
        )
        return done

    async def plan(
        self,
        message_ids: list[str] | None,
        *,
        destination: str | None = None,
        mapping: MappingChoice,
        where: Filter | None = None,
    ) -> list[ReplayPlan]:
        """Plans for ``message_ids``, or for every dead letter (of ``destination``, or as ``where``
        picks them) when None."""
        if message_ids is None:
            messages = await self.listing(destination, MAX_LISTED, where=where)
        else:
            found = [await self._store.run(units.message, i) for i in message_ids]
            missing = [i for i, m in zip(message_ids, found, strict=True) if m is None or m.status != "dead"]
            if missing:
                raise LookupError(f"not dead letters: {', '.join(missing)}")
            messages = [m for m in found if m is not None]
        return [await self._plan_one(m, mapping) for m in messages]

    async def replay(
        self, plans: list[ReplayPlan], *, by: str, reason: str, rate: RateLimit | None = None
    ) -> list[str]:
        """Replay the planned dead letters, at most ``rate`` a second (all at once without one); each
        replay recorded with who and why. Returns the ids made pending again."""
        if not by.strip() or not reason.strip():
            raise ValueError("a replay needs who (by) and why (reason)")
        await self._store.run(units.save_mappings, self._routes.versions(), now_ms(self._clock))
        replays = [Replay(p.message.message_id, p.mapping_hash if p.changes_version else None) for p in plans]
        step = rate.batch if rate is not None else max(1, len(replays))
        replayed: list[str] = []
        for start in range(0, len(replays), step):
            if start and rate is not None:
                await rate.pause()
            batch = replays[start : start + step]
            replayed += await self._store.run(
                units.replay_by_operator, batch, by, reason, now_ms(self._clock)
            )
        log.warning(
            "%d dead letters replayed by %s: %s (%s)",
            len(replayed),
            by,
            reason,
            _some(replayed),
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


def _some(ids: list[str]) -> str:
    """Up to 20 ids, for a log line."""
    return ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
