"""Dispatcher middleware: hooks before and after each delivery attempt, as in dramatiq.

``before_attempt`` may answer for the attempt (a circuit breaker holding a message back, say): the
attempt is then not made, and that outcome is written. ``after_attempt`` gets the attempt and the outcome
so far, and returns the outcome to write; middleware run in the order given, each seeing the previous
one's outcome. The outcome of an attempt starts as what the attempt itself says: delivered; a retryable
failure due again at once; a permanent one dead. ``Retries`` then applies the retry policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from prometheus_client import Counter, Histogram

from lienthong.adapters.exchanges import Exchange
from lienthong.bus.retry import RetryPolicy
from lienthong.errors import DeliveryError, RetryableError
from lienthong.model import IngestItem, Message, Outcome, OutcomeKind
from lienthong.observability.logs import redact
from lienthong.observability.metrics import Metrics


@dataclass(frozen=True)
class Attempt:
    """One try at delivering ``message``: number ``number`` (from 1), its times in seconds, and its
    failure (None: delivered)."""

    message: Message
    number: int
    started: float
    finished: float
    error: DeliveryError | None
    http_status: int | None = None
    exchange: Exchange | None = None
    """The hashes of the attempt's last exchange with the peer (none: it never reached the wire)."""

    def outcome(self) -> Outcome:
        """The outcome as the attempt alone says it, before any middleware."""
        error = self.error
        # What a peer answered may echo the request (an ID number refused): masked before it is kept in the
        # outbox and attempts, where it outlives the payload's retention and is never sealed.
        message, status = (
            (None, self.http_status) if error is None else (redact(error.describe()), error.status)
        )
        kind: OutcomeKind = (
            "delivered" if error is None else "retry" if isinstance(error, RetryableError) else "dead"
        )
        finished_ms = int(self.finished * 1000)
        return Outcome(
            self.message.message_id,
            kind,
            self.number,
            int(self.started * 1000),
            finished_ms,
            finished_ms if kind == "retry" else None,
            message,
            status,
            lease_until_ms=self.message.lease_until_ms,
            actor=f"{self.message.destination}.{self.message.operation}",
            request_sha256=self.exchange.request_sha256 if self.exchange else "",
            response_sha256=self.exchange.response_sha256 if self.exchange else "",
        )


GAVE_UP = "gave up after"
"""How a dead letter's error says the retry policy gave up (the peer failed, retryably, too long), as
against a permanent refusal: the EMC completeness job replays the first kind only."""


class Middleware:
    """Does nothing; subclasses override the hooks they need."""

    def before_attempt(self, message: Message) -> Outcome | None:
        return None

    def after_attempt(self, attempt: Attempt, outcome: Outcome) -> Outcome:
        return outcome


class Retries(Middleware):
    """A retryable failure is tried again after the policy's delay, or dead once the policy gives up.

    The policy counts attempts and age from the message's last replay, so a replay starts afresh.
    """

    def __init__(self, policy: RetryPolicy, by_destination: Mapping[str, RetryPolicy] | None = None) -> None:
        self._policy = policy
        self._by_destination = dict(by_destination or {})

    def after_attempt(self, attempt: Attempt, outcome: Outcome) -> Outcome:
        error = attempt.error
        if outcome.kind != "retry" or not isinstance(error, RetryableError):
            return outcome
        message = attempt.message
        attempts = attempt.number - message.replay_base
        age_s = attempt.finished - message.created_ms / 1000
        policy = self._by_destination.get(message.destination, self._policy)
        delay = policy.next_delay_s(attempts=attempts, age_s=age_s, retry_after_s=error.retry_after_s)
        if delay is None:
            return replace(
                outcome,
                kind="dead",
                next_attempt_ms=None,
                error=f"{outcome.error}; {GAVE_UP} {attempts} attempts",
            )
        return replace(outcome, next_attempt_ms=int((attempt.finished + delay) * 1000))


class DeadLetterNotice(Middleware):
    """A message that dies raises an event (``delivery.failed``), written with its outcome in one
    transaction, so a route can tell a person; ``notice`` builds it, or None for no notice."""

    def __init__(self, notice: Callable[[Message, Outcome], IngestItem | None]) -> None:
        self._notice = notice

    def after_attempt(self, attempt: Attempt, outcome: Outcome) -> Outcome:
        if outcome.kind != "dead":
            return outcome
        raised = self._notice(attempt.message, outcome)
        return outcome if raised is None else replace(outcome, raises=(*outcome.raises, raised))


class DeliveryMetrics(Middleware):
    """Counts outcomes and observes attempts' latency, by destination and operation."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        # The labelled series, looked up once each: ``labels()`` on every attempt was 2% of the bus's time.
        self._latency: dict[tuple[str, str], Histogram] = {}
        self._counted: dict[tuple[str, str, str], Counter] = {}

    def after_attempt(self, attempt: Attempt, outcome: Outcome) -> Outcome:
        labels = (attempt.message.destination, attempt.message.operation)
        latency = self._latency.get(labels)
        if latency is None:
            latency = self._latency[labels] = self._metrics.delivery_latency.labels(*labels)
        latency.observe(max(0.0, attempt.finished - attempt.started))
        key = (*labels, outcome.kind)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self._metrics.deliveries.labels(*key)
        counter.inc()
        return outcome
