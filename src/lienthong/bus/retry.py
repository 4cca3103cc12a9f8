"""The retry policy as a value: a backoff, a stop condition, and an injected source of randomness.

Retries are not a loop here: a failed delivery goes back to the outbox with a due time, so it survives a
restart. That is why this is not tenacity's ``Retrying`` loop, though the parts follow its shape
(``wait`` and ``stop`` objects composed with ``|``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Stop(Protocol):
    def exhausted(self, attempts: int, age_s: float) -> bool:
        """True when no further attempt may be made after ``attempts`` tries, ``age_s`` after acceptance."""
        ...


@dataclass(frozen=True)
class StopAfterAttempts:
    max_attempts: int

    def exhausted(self, attempts: int, age_s: float) -> bool:
        return attempts >= self.max_attempts

    def __or__(self, other: Stop) -> StopAny:
        return StopAny((self, other))


@dataclass(frozen=True)
class StopAfterAge:
    max_age_s: float

    def exhausted(self, attempts: int, age_s: float) -> bool:
        return age_s >= self.max_age_s

    def __or__(self, other: Stop) -> StopAny:
        return StopAny((self, other))


@dataclass(frozen=True)
class StopAny:
    parts: tuple[Stop, ...]

    def exhausted(self, attempts: int, age_s: float) -> bool:
        return any(part.exhausted(attempts, age_s) for part in self.parts)


@dataclass(frozen=True)
class ExponentialBackoff:
    """``initial_s * multiplier**(attempt-1)``, spread by ±``jitter`` and capped at ``max_s`` seconds."""

    initial_s: float = 1.0
    multiplier: float = 2.0
    max_s: float = 300.0
    jitter: float = 0.2

    def delay_s(self, attempt: int, rand: float) -> float:
        """Delay after failed attempt number ``attempt`` (1-based); ``rand`` is uniform in [0, 1)."""
        base = min(self.max_s, self.initial_s * self.multiplier ** max(0, attempt - 1))
        return min(self.max_s, base * (1.0 + self.jitter * (2.0 * rand - 1.0)))


@dataclass(frozen=True)
class RetryPolicy:
    backoff: ExponentialBackoff
    stop: Stop
    rand: Callable[[], float] = field(default=random.random, compare=False)

    def next_delay_s(self, *, attempts: int, age_s: float, retry_after_s: float | None) -> float | None:
        """Seconds to wait before the next attempt, or None when retries are exhausted.

        A peer's ``Retry-After`` is honoured: we never come back sooner than it asked, even past the cap.
        """
        if self.stop.exhausted(attempts, age_s):
            return None
        delay = self.backoff.delay_s(attempts, self.rand())
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return delay
