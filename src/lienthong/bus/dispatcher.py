"""The dispatcher: claims due messages, delivers them through adapters, and writes their outcomes.

At most ``max_in_flight`` deliveries run at once. The store's claim hands out at most one message per
(destination, dossier), never one behind an undelivered message of the same key, so a dossier's events
reach each destination in order while different dossiers go in parallel. Each claim is a lease: if an
outcome cannot be written (a store fault), the message is due again once its lease runs out.

What happens around an attempt is middleware (``bus.middleware``), as in dramatiq: retries and their
policy, the dead-letter notice and the metrics each hook in before or after the attempt; the dispatcher
itself only claims, calls the adapter, and writes what the middleware decided.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping, Sequence

from lienthong.adapters.base import Adapter
from lienthong.adapters.exchanges import Exchange, recording
from lienthong.bus.circuits import CircuitBreakers
from lienthong.bus.middleware import Attempt, Middleware
from lienthong.bus.routes import Mapper
from lienthong.clock import Clock, now_ms
from lienthong.errors import DeliveryError, PermanentError, RetryableError, StoreError
from lienthong.model import Message, Outcome
from lienthong.observability.logs import delivery_fields
from lienthong.store import Store, units

log = logging.getLogger("lienthong.bus.dispatcher")
_ORPHANS_KEPT = 1000
_BUFFER = 5
_LOW_WATER = 2
"""Claimed messages kept, running and buffered together, up to ``_BUFFER * max_in_flight``; a cycle claims
more when fewer than ``_LOW_WATER * max_in_flight`` wait. Measured once, with bench_bus.py's
``bus_deliveries`` on 4,000 deliveries to the sandbox portal, 32 in flight: 3/1 gave 2,580/s, 5/2
3,019/s, 9/4 3,462/s, as each cycle (about 12 ms, most of it the round trip to the store's process)
carries more. 5/2 keeps a buffered message's wait well inside its lease even behind slow destinations."""


class Dispatcher:
    """Claims and delivers; at most ``max_in_flight`` deliveries at once.

    It works in cycles of one transaction each (``units.settle_and_claim``): the outcomes of the
    deliveries finished since the last cycle are written, and due messages are claimed into a small
    buffer (up to ``max_in_flight`` more than are running). A finished delivery starts the next buffered
    one at once, without the store; a new cycle runs when the buffer runs low, when ``max_in_flight``
    outcomes wait, or at the poll interval. At saturation one commit serves many messages (counted by
    benchmarks/bench_bus.py). An outcome waits for its cycle: until then its message stays in flight, so
    its dossier's next message waits too, and a crash in between delivers it again (at least once).
    """

    def __init__(
        self,
        store: Store,
        mapper: Mapper,
        adapters: Mapping[str, Adapter],
        middleware: Sequence[Middleware],
        *,
        clock: Clock,
        max_in_flight: int = 64,
        poll_interval_s: float = 0.5,
        lease_s: float = 300.0,
    ) -> None:
        self._store = store
        self._mapper = mapper
        self._adapters = adapters
        self._middleware = tuple(middleware)
        # The breakers' state is shared through the store: each cycle sends their changes and reads back.
        self._circuits = next((m for m in self._middleware if isinstance(m, CircuitBreakers)), None)
        self._clock = clock
        self._max_in_flight = max_in_flight
        self._poll_interval_s = poll_interval_s
        self._lease_ms = int(lease_s * 1000)
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready: deque[Message] = deque()
        self._outcomes: list[Outcome] = []
        self._cycling = asyncio.Lock()
        self._last_lease = 0
        self._orphaned: list[int] = []  # leases of cycles that claimed and never answered
        self._low_water = _LOW_WATER * max_in_flight
        self._wake = asyncio.Event()
        self._stopping = False
        self._store_failing = False
        self.running = False

    def wake(self) -> None:
        """New messages are due (an event was accepted): look now, not at the next poll."""
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
                await self._cycle()
                self._start_ready()
                if not self._wake.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
        finally:
            self.running = False

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop claiming; wait up to ``grace_s`` for deliveries under way, then cancel the rest, and write
        the outcomes gathered.

        A cancelled or buffered delivery stays in flight in the store and is delivered again after its
        lease or the next start (at least once).
        """
        self._stopping = True
        self.wake()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        self._ready.clear()
        await self._cycle()  # after the one under way, if any: the outcomes gathered are written
        if self._outcomes:
            log.warning(
                "%d outcomes could not be written before the stop; their messages are delivered again"
                " after a restart or their leases",
                len(self._outcomes),
            )

    async def _cycle(self) -> None:
        """One transaction: write the outcomes gathered, and claim when the buffer runs low. One cycle at
        a time: ``stop`` waits for the one under way before writing what is left."""
        async with self._cycling:
            await self._cycle_once()

    async def _cycle_once(self) -> None:
        room = 0
        if not self._stopping and len(self._ready) < self._low_water:
            room = _BUFFER * self._max_in_flight - len(self._tasks) - len(self._ready)
        outcomes, self._outcomes = self._outcomes, []
        changes = self._circuits.take_changes() if self._circuits is not None else None
        if not outcomes and room <= 0 and not self._orphaned and not changes:
            return
        now = now_ms(self._clock)
        # Each cycle's lease is its own (one millisecond apart at least), so that the claims of a cycle
        # whose answer never came can be told apart and freed by a later one.
        lease = self._last_lease = max(now + self._lease_ms, self._last_lease + 1)
        orphaned = list(self._orphaned)
        try:
            cycle = await self._store.run(
                units.settle_and_claim, outcomes, now, room, lease, orphaned=orphaned, circuits=changes
            )
        except StoreError as exc:
            if self._circuits is not None and changes is not None:
                self._circuits.restore(changes)
            # Kept for the next cycle; a message whose lease runs out meanwhile is due again, and its late
            # outcome is then dropped by the store. The claims may still be made (a store past its
            # deadline runs the cycle later): the next cycle that answers frees them.
            self._outcomes[:0] = outcomes
            if room > 0:
                # Bounded: the claims of older cycles are freed by their leases anyway.
                self._orphaned = [*self._orphaned[-(_ORPHANS_KEPT - 1) :], lease]
            self._store_state(exc)
            return
        del self._orphaned[: len(orphaned)]
        self._store_state(None)
        if self._circuits is not None:
            self._circuits.adopt(cycle.circuits)
        if not self._stopping:
            # Once ``stop`` began, what this cycle claimed stays in flight in the store until its lease
            # runs out or the next start.
            self._ready.extend(cycle.messages)

    def _start_ready(self) -> None:
        # A buffered message starts only with at least half its lease left, so that its delivery ends
        # inside the lease (keep dispatcher.lease_s above twice the slowest destination's timeout);
        # otherwise it is left to lapse and a later cycle claims it anew.
        fresh_from = now_ms(self._clock) + self._lease_ms // 2
        while self._ready and len(self._tasks) < self._max_in_flight and not self._stopping:
            message = self._ready.popleft()
            if message.lease_until_ms < fresh_from:
                continue
            task = asyncio.create_task(self._deliver(message), name=f"deliver {message.message_id}")
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _store_state(self, error: StoreError | None) -> None:
        """Log when the store stops or starts answering: one line per change, not one per poll."""
        if error is not None and not self._store_failing:
            log.warning(
                "the store cannot take outcomes or hand out messages (retrying each cycle): %s", error
            )
        elif error is None and self._store_failing:
            log.warning("the store answers again")
        self._store_failing = error is not None

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._start_ready()
        if len(self._ready) < self._low_water or len(self._outcomes) >= self._max_in_flight:
            self.wake()

    async def _deliver(self, message: Message) -> None:
        outcome: Outcome | None = None
        for middleware in self._middleware:
            outcome = middleware.before_attempt(message)
            if outcome is not None:
                break
        if outcome is None:
            attempt = await self._attempt(message)
            outcome = attempt.outcome()
            for middleware in self._middleware:
                outcome = middleware.after_attempt(attempt, outcome)
        _log_outcome(message, outcome)
        self._outcomes.append(outcome)

    async def _attempt(self, message: Message) -> Attempt:
        number = message.attempts + 1
        started = self._clock()
        error: DeliveryError | None = None
        status: int | None = None
        exchange: Exchange | None = None
        adapter = self._adapters.get(message.destination)
        if adapter is None:
            error = PermanentError(f"no destination named {message.destination!r} is configured")
        else:
            # Cut off before the lease runs out (with a tenth of it to spare): past it the message is due
            # again, and a copy still on its way could reach the destination after the next message.
            cut_off = message.lease_until_ms / 1000 - self._lease_ms / 10_000 - self._clock()
            try:
                with recording() as exchange:
                    async with asyncio.timeout(max(0.0, cut_off)):
                        body = await self._mapper.body(message)
                        status = (await adapter.deliver(message, body)).http_status
            except TimeoutError:
                error = RetryableError(
                    f"the attempt was cut off before its lease ran out ({self._lease_ms / 1000:g} s);"
                    " raise dispatcher.lease_s above twice the destination's timeout",
                    destination=message.destination,
                    operation=message.operation,
                )
            except (RetryableError, PermanentError) as exc:
                error = exc
            except Exception as exc:
                # An adapter maps every failure it knows; anything else is a bug, and retrying a bug does
                # not fix it. Dead-letter it with its type so a person sees it, and replays once fixed.
                log.exception("unexpected error delivering %s", message.message_id)
                error = PermanentError(f"internal error: {type(exc).__name__}: {exc}")
        return Attempt(message, number, started, self._clock(), error, status, exchange)


def _log_outcome(message: Message, outcome: Outcome) -> None:
    """A line per outcome, with the delivery's ids: a dead letter at WARNING, a retry at INFO, a delivery
    or a hold at DEBUG (a busy node delivers thousands a second)."""
    level = _LEVELS[outcome.kind]
    if not log.isEnabledFor(level):
        return
    extra = delivery_fields(message)
    if outcome.kind == "dead":
        log.warning("dead letter after attempt %d: %s", outcome.attempt, outcome.error, extra=extra)
    elif outcome.kind == "retry":
        wait_s = ((outcome.next_attempt_ms or outcome.finished_ms) - outcome.finished_ms) / 1000
        log.info(
            "attempt %d failed, retry in %.1f s: %s", outcome.attempt, wait_s, outcome.error, extra=extra
        )
    elif outcome.kind == "held":
        log.debug("held: the destination's circuit is open", extra=extra)
    else:
        log.debug("delivered (attempt %d, http %s)", outcome.attempt, outcome.http_status, extra=extra)


_LEVELS = {"dead": logging.WARNING, "retry": logging.INFO, "held": logging.DEBUG, "delivered": logging.DEBUG}
