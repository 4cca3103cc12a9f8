"""The retry policy is a value: exact delays, caps, jitter bounds, stop conditions, Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lienthong.adapters.failures import parse_retry_after
from lienthong.bus.retry import ExponentialBackoff, RetryPolicy, StopAfterAge, StopAfterAttempts


def policy(
    max_attempts: int = 5, max_age_s: float = 3600, rand: float = 0.5, jitter: float = 0.0
) -> RetryPolicy:
    return RetryPolicy(
        ExponentialBackoff(initial_s=1, multiplier=2, max_s=10, jitter=jitter),
        StopAfterAttempts(max_attempts) | StopAfterAge(max_age_s),
        rand=lambda: rand,
    )


def test_delays_double_from_the_initial_delay_up_to_the_cap() -> None:
    p = policy(max_attempts=10)
    delays = [p.next_delay_s(attempts=n, age_s=0, retry_after_s=None) for n in range(1, 8)]
    assert delays == [1, 2, 4, 8, 10, 10, 10]


def test_no_delay_once_the_attempts_are_used_up() -> None:
    assert policy(max_attempts=3).next_delay_s(attempts=3, age_s=0, retry_after_s=None) is None


def test_no_delay_once_the_message_is_too_old() -> None:
    assert policy(max_age_s=60).next_delay_s(attempts=1, age_s=60, retry_after_s=None) is None


def test_retry_after_wins_over_a_shorter_backoff_even_past_the_cap() -> None:
    assert policy().next_delay_s(attempts=1, age_s=0, retry_after_s=30) == 30


def test_a_shorter_retry_after_does_not_shorten_the_backoff() -> None:
    assert policy().next_delay_s(attempts=3, age_s=0, retry_after_s=1) == 4


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 3.2), (0.5, 4.0), (0.999999, 4.8)])
def test_jitter_spreads_the_delay_by_the_given_share(rand: float, expected: float) -> None:
    p = policy(rand=rand, jitter=0.2)
    assert p.next_delay_s(attempts=3, age_s=0, retry_after_s=None) == pytest.approx(expected, abs=1e-4)


@given(attempt=st.integers(1, 200), rand=st.floats(0, 1, exclude_max=True), jitter=st.floats(0, 1))
def test_a_delay_is_never_negative_nor_over_the_cap(attempt: int, rand: float, jitter: float) -> None:
    delay = ExponentialBackoff(initial_s=0.5, multiplier=3, max_s=60, jitter=jitter).delay_s(attempt, rand)
    assert 0 <= delay <= 60


NOW = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("Mon, 23 Nov 2026 08:00:30 GMT", 30.0),
        ("Mon, 23 Nov 2026 07:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds
