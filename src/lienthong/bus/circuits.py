"""Circuit breakers, one per destination, as dispatcher middleware, shared by the nodes of one store.

A destination that fails ``failures`` attempts in a row (retryable failures: it is down or overloaded,
not refusing a message) opens its circuit: for ``open_s`` its messages are held, pending in the outbox,
without an attempt (a ``held`` outcome), so they do not burn their retries against a system that is
down. Then one message goes through as a probe (half-open): if it is delivered, or refused for its own
content, the circuit closes; if it fails again, the circuit opens again for twice as long, up to
``max_open_s``. Messages held while the probe is out come back ``probe_wait_s`` later.

The state is shared through the store (the ``circuits`` table), so that on PostgreSQL with several nodes
one node's trip holds every node's messages and one probe serves them all. Each node keeps a view of
it, read back by every dispatcher cycle (``store.units.settle_and_claim``), and sends what it sees happen
as changes (``model.CircuitChange``) with the next cycle; the store applies a change only if it still
holds (``store.units.apply_circuit_change``). Failures in a row are counted by each node. The probe is
granted by the store: a node whose view says the open time is over asks for it with the message it
holds, and whichever node next claims that message lets it through. A node's view is at most a cycle
old: in between, it may deliver a message or two to a destination another node has just found down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from prometheus_client import Counter, Gauge

from lienthong.bus.middleware import Attempt, Middleware
from lienthong.errors import RetryableError
from lienthong.model import CircuitChange, CircuitRow, Message, Outcome
from lienthong.observability.logs import delivery_fields, fields

log = logging.getLogger("lienthong.bus.circuits")


class State(IntEnum):
    """A circuit's state, as its gauge reports it."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True)
class CircuitSettings:
    failures: int = 5
    """Retryable failures in a row that open the circuit."""
    open_s: float = 30.0
    """How long it stays open the first time; each failed probe doubles it."""
    max_open_s: float = 600.0
    probe_wait_s: float = 1.0
    """When messages held while a probe is out are due again."""


@dataclass
class _Circuit:
    settings: CircuitSettings
    state: State = State.CLOSED
    failures: int = 0
    open_for_s: float = 0.0
    reopen_at: float = 0.0
    probe: str | None = None
    asked: str | None = None
    """The message this node asked the store to make the probe (it is held meanwhile)."""


class CircuitBreakers(Middleware):
    """Holds back the messages of destinations whose circuit is open; the first in the list of
    middleware, so that a held message meets no other."""

    def __init__(
        self,
        settings: CircuitSettings,
        *,
        clock: Callable[[], float],
        state_gauge: Gauge,
        opened: Counter,
        by_destination: Mapping[str, CircuitSettings] | None = None,
    ) -> None:
        self._settings = settings
        self._by_destination = dict(by_destination or {})
        self._clock = clock
        self._gauge = state_gauge
        self._opened = opened
        self._circuits: dict[str, _Circuit] = {}
        self._changes: list[CircuitChange] = []

    def state(self, destination: str) -> State:
        return self._circuit(destination).state

    def take_changes(self) -> list[CircuitChange]:
        """What this node saw happen since the last cycle, for the store; ``restore`` them if the cycle
        fails."""
        changes, self._changes = self._changes, []
        return changes

    def restore(self, changes: list[CircuitChange]) -> None:
        self._changes[:0] = changes

    def adopt(self, rows: list[CircuitRow]) -> None:
        """Take the circuits as the store shares them (read at the end of a cycle). A destination with a
        change not yet sent keeps this node's view until its change has been applied or refused."""
        waiting = {change.destination for change in self._changes}
        for row in rows:
            if row.destination in waiting:
                continue
            circuit = self._circuit(row.destination)
            state = State(row.state)
            circuit.open_for_s = row.open_for_ms / 1000
            circuit.reopen_at = row.reopen_at_ms / 1000
            circuit.probe = row.probe
            circuit.asked = None  # answered: granted (half-open now), or refused (it asks again when due)
            if state is circuit.state:
                continue
            if state is State.CLOSED:
                circuit.failures = 0
            log.info(
                "%s: circuit %s (as the store says: another node's probe or trip)",
                row.destination,
                state.name.lower().replace("_", "-"),
                extra=fields(destination=row.destination),
            )
            self._set(row.destination, circuit, state)

    def _circuit(self, destination: str) -> _Circuit:
        circuit = self._circuits.get(destination)
        if circuit is None:
            settings = self._by_destination.get(destination, self._settings)
            circuit = self._circuits[destination] = _Circuit(settings)
            self._gauge.labels(destination).set(State.CLOSED)
        return circuit

    def before_attempt(self, message: Message) -> Outcome | None:
        circuit = self._circuit(message.destination)
        if circuit.state is State.CLOSED:
            return None
        now = self._clock()
        if circuit.state is State.OPEN:
            if now < circuit.reopen_at:
                return _held(message, now, circuit.reopen_at)
            if circuit.asked is None:
                # The store decides which message probes, once for every node: this one, held, is due
                # again at once, and the cycle that writes it asks for it to be the probe.
                circuit.asked = message.message_id
                self._changes.append(CircuitChange(message.destination, "want_probe", message.message_id))
                log.info(
                    "%s: open time over, asking to probe with %s",
                    message.destination,
                    message.message_id,
                    extra=delivery_fields(message),
                )
                return _held(message, now, now)
            return _held(message, now, now + circuit.settings.probe_wait_s)
        if circuit.probe == message.message_id:  # granted to this message (by this node or another)
            log.info(
                "%s: circuit half-open, probing with %s",
                message.destination,
                message.message_id,
                extra=delivery_fields(message),
            )
            return None
        return _held(message, now, now + circuit.settings.probe_wait_s)

    def after_attempt(self, attempt: Attempt, outcome: Outcome) -> Outcome:
        destination = attempt.message.destination
        circuit = self._circuit(destination)
        failed = isinstance(attempt.error, RetryableError)
        message_id = attempt.message.message_id
        if circuit.state is State.HALF_OPEN and message_id == circuit.probe:
            circuit.probe = circuit.asked = None
            if failed:
                circuit.open_for_s = min(circuit.open_for_s * 2, circuit.settings.max_open_s)
                self._changes.append(
                    CircuitChange(destination, "probe_failed", message_id, int(circuit.open_for_s * 1000))
                )
                self._open(destination, circuit, f"the probe failed: {outcome.error}")
            else:
                circuit.failures = 0
                self._changes.append(CircuitChange(destination, "probe_passed", message_id))
                self._set(destination, circuit, State.CLOSED)
                log.warning(
                    "%s: circuit closed, the probe went through",
                    destination,
                    extra=fields(destination=destination),
                )
            return outcome
        if circuit.state is not State.CLOSED:
            return outcome  # a delivery started before the circuit opened
        if not failed:
            circuit.failures = 0
            return outcome
        circuit.failures += 1
        if circuit.failures >= circuit.settings.failures:
            circuit.open_for_s = circuit.settings.open_s
            self._changes.append(CircuitChange(destination, "trip", None, int(circuit.open_for_s * 1000)))
            self._open(
                destination, circuit, f"{circuit.failures} failures in a row, the last: {outcome.error}"
            )
        return outcome

    def _open(self, destination: str, circuit: _Circuit, why: str) -> None:
        circuit.reopen_at = self._clock() + circuit.open_for_s
        circuit.asked = None
        self._set(destination, circuit, State.OPEN)
        self._opened.labels(destination).inc()
        log.warning(
            "%s: circuit open for %g s, its messages wait in the outbox (%s)",
            destination,
            circuit.open_for_s,
            why,
            extra=fields(destination=destination),
        )

    def _set(self, destination: str, circuit: _Circuit, state: State) -> None:
        circuit.state = state
        self._gauge.labels(destination).set(state)


def _held(message: Message, now: float, until: float) -> Outcome:
    now_ms = int(now * 1000)
    return Outcome(
        message.message_id,
        "held",
        message.attempts,
        now_ms,
        now_ms,
        int(until * 1000),
        lease_until_ms=message.lease_until_ms,
    )
