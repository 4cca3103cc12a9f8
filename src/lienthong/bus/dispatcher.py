"""The dispatcher: claims due outbox rows and delivers them through adapters.

At most ``max_in_flight`` deliveries run at once. The store's claim hands out at most one row per
(destination, dossier) and never one behind an undelivered row of the same key, so a dossier's events
reach each destination in order while different dossiers go in parallel. Every outcome is written back
before its slot frees: a crash leaves rows in flight, which ``Outbox.recover`` returns to pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from lienthong.adapters.base import Adapter
from lienthong.bus.outbox import Clock, Outbox
from lienthong.bus.retry import RetryPolicy
from lienthong.bus.routes import Mapper
from lienthong.errors import PermanentError, RetryableError, StoreError
from lienthong.model import IngestItem, Message, Outcome, OutcomeKind
from lienthong.observability.metrics import Metrics

log = logging.getLogger("lienthong.bus.dispatcher")


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        mapper: Mapper,
        adapters: Mapping[str, Adapter],
        policy: RetryPolicy,
        metrics: Metrics,
        *,
        clock: Clock,
        max_in_flight: int = 64,
        poll_interval_s: float = 0.5,
        on_dead: Callable[[Message, Outcome], IngestItem | None] | None = None,
    ) -> None:
        self._outbox = outbox
        self._mapper = mapper
        self._adapters = adapters
        self._policy = policy
        self._metrics = metrics
        self._clock = clock
        self._max_in_flight = max_in_flight
        self._poll_interval_s = poll_interval_s
        self._on_dead = on_dead
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self.running = False

    def wake(self) -> None:
        """New rows are due (an event was accepted, a slot freed): look now rather than at the next poll."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def run(self) -> None:
        """Claim and deliver until ``stop`` is called."""
        self.running = True
        try:
            while not self._stopping:
                self._wake.clear()
                await self._claim_and_start()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
        finally:
            self.running = False

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop claiming; wait up to ``grace_s`` for deliveries under way, then cancel the rest.

        A cancelled delivery stays in flight in the store and is redelivered after restart (at least once).
        """
        self._stopping = True
        self.wake()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _claim_and_start(self) -> None:
        free = self._max_in_flight - len(self._tasks)
        if free <= 0:
            return
        try:
            claimed = await self._outbox.claim(free)
        except StoreError:
            log.exception("claiming from the outbox failed; trying again at the next poll")
            return
        if self._stopping:
            # ``stop`` began while the claim was under way and waits only for deliveries already started:
            # these stay in flight in the store, and the next start's recover() makes them pending again.
            return
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery), name=f"deliver {delivery.message_id}")
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.wake()

    async def _deliver(self, delivery: Message) -> None:
        attempt = delivery.attempts + 1
        started = self._clock()
        outcome = await self._attempt(delivery, attempt, started)
        finished = self._clock()
        labels = (delivery.destination, delivery.operation)
        self._metrics.delivery_latency.labels(*labels).observe(max(0.0, finished - started))
        self._metrics.deliveries.labels(*labels, outcome.kind).inc()
        if outcome.kind == "dead" and self._on_dead is not None:
            raised = self._on_dead(delivery, outcome)
            if raised is not None:
                outcome = replace(outcome, raises=(raised,))
        try:
            await self._outbox.complete(outcome)
        except StoreError:
            # The row stays in flight (and what it raises unstored); the next start-up's recover() makes
            # it pending again, and its next outcome raises it again.
            log.exception("could not record the outcome of %s", delivery.message_id)

    async def _attempt(self, delivery: Message, attempt: int, started: float) -> Outcome:
        record = _Record(delivery.message_id, attempt, int(started * 1000), self._clock)
        adapter = self._adapters.get(delivery.destination)
        if adapter is None:
            return record.outcome(
                "dead", error=f"no destination named {delivery.destination!r} is configured"
            )
        try:
            body = await self._mapper.body(delivery)
            receipt = await adapter.deliver(delivery, body)
        except RetryableError as exc:
            return self._after_retryable(delivery, exc, record)
        except PermanentError as exc:
            return record.outcome("dead", error=exc.describe(), http_status=exc.status)
        except Exception as exc:
            # An adapter maps every failure it knows; anything else is a bug, and retrying a bug does not
            # fix it. Dead-letter it with its type so a person sees it, and replays once it is fixed.
            log.exception("unexpected error delivering %s", delivery.message_id)
            return record.outcome("dead", error=f"internal error: {type(exc).__name__}: {exc}")
        return record.outcome("delivered", http_status=receipt.http_status)

    def _after_retryable(self, delivery: Message, exc: RetryableError, record: _Record) -> Outcome:
        now = self._clock()
        age_s = now - delivery.created_ms / 1000
        attempts = record.attempt - delivery.replay_base  # a replay gives the policy a fresh start
        delay = self._policy.next_delay_s(attempts=attempts, age_s=age_s, retry_after_s=exc.retry_after_s)
        if delay is None:
            error = f"{exc.describe()}; gave up after {attempts} attempts"
            return record.outcome("dead", error=error, http_status=exc.status)
        next_ms = int((now + delay) * 1000)
        return record.outcome("retry", error=exc.describe(), http_status=exc.status, next_attempt_ms=next_ms)


@dataclass(frozen=True)
class _Record:
    """What is known of an attempt before its outcome: builds the Outcome row."""

    message_id: str
    attempt: int
    started_ms: int
    clock: Clock

    def outcome(
        self,
        kind: OutcomeKind,
        *,
        error: str | None = None,
        http_status: int | None = None,
        next_attempt_ms: int | None = None,
    ) -> Outcome:
        finished_ms = int(self.clock() * 1000)
        return Outcome(
            self.message_id,
            kind,
            self.attempt,
            self.started_ms,
            finished_ms,
            next_attempt_ms,
            error,
            http_status,
        )
