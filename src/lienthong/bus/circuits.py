"""Circuit breakers, one per destination, as dispatcher middleware.

A destination that fails ``failures`` attempts in a row (retryable failures: it is down or overloaded,
not refusing a message) opens its circuit: for ``open_s`` its messages are held, pending in the outbox,
without an attempt (a ``held`` outcome), so they do not burn their retries against a system that is
down. Then one message goes through as a probe (half-open): if it is delivered, or refused for its own
content, the circuit closes; if it fails again, the circuit opens again for twice as long, up to
``max_open_s``. Messages held while the probe is out come back ``probe_wait_s`` later.

The state lives in this node (several nodes on PostgreSQL each keep their own: issue 14 asks for it to
be shared through the store, which is not built yet).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from prometheus_client import Counter, Gauge

from lienthong.bus.middleware import Attempt, Middleware
from lienthong.errors import RetryableError
from lienthong.model import Message, Outcome
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

    def state(self, destination: str) -> State:
        return self._circuit(destination).state

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
            self._set(message.destination, circuit, State.HALF_OPEN)
            circuit.probe = message.message_id
            log.info(
                "%s: circuit half-open, probing with %s",
                message.destination,
                message.message_id,
                extra=delivery_fields(message),
            )
            return None
        if circuit.probe == message.message_id:  # the probe itself, claimed again (its lease ran out)
            return None
        return _held(message, now, now + circuit.settings.probe_wait_s)

    def after_attempt(self, attempt: Attempt, outcome: Outcome) -> Outcome:
        destination = attempt.message.destination
        circuit = self._circuit(destination)
        failed = isinstance(attempt.error, RetryableError)
        if circuit.state is State.HALF_OPEN and attempt.message.message_id == circuit.probe:
            circuit.probe = None
            if failed:
                circuit.open_for_s = min(circuit.open_for_s * 2, circuit.settings.max_open_s)
                self._open(destination, circuit, f"the probe failed: {outcome.error}")
            else:
                circuit.failures = 0
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
            self._open(
                destination, circuit, f"{circuit.failures} failures in a row, the last: {outcome.error}"
            )
        return outcome

    def _open(self, destination: str, circuit: _Circuit, why: str) -> None:
        circuit.reopen_at = self._clock() + circuit.open_for_s
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
