"""The payment state rule, as a table: paid at most once, forward only (payments.state.judge)."""

from __future__ import annotations

import pytest

from lienthong.payments import Claim, PaymentStatus, Verdict, judge
from lienthong.payments.records import PaymentRecord


def stored(status: str, transaction: str = "", channel: str = "", amount: int = 8000) -> PaymentRecord:
    return PaymentRecord("TT-1", "HS-1", "U", amount, "{}", "", status, transaction, 0, channel)


def claim(
    status: PaymentStatus, transaction: str = "T1", channel: str = "paygov", amount: int = 8000
) -> Claim:
    return Claim(channel, transaction, "TT-1", amount, status, "2026-12-02T10:00:00+07:00")


@pytest.mark.parametrize(
    ("current", "news", "verdict"),
    [
        (None, claim("paid"), "unknown_reference"),
        (stored("initiated"), claim("paid", amount=9000), "amount_mismatch"),
        (stored("initiated"), claim("paid"), "accepted"),
        (stored("initiated"), claim("pending"), "accepted"),
        (stored("pending", "T1", "paygov"), claim("paid"), "accepted"),
        (stored("failed", "T1", "paygov"), claim("paid", "T2"), "accepted"),  # paid on a second try
        # Another attempt's older news, heard late: taken, the payment unchanged (the platform must not
        # be told to send it again), while the same transaction going backwards is refused.
        (stored("failed", "T1", "paygov"), claim("pending", "T2"), "stale"),
        (stored("failed", "T1", "paygov"), claim("pending", "T1"), "contradiction"),
        (stored("pending", "T1", "paygov"), claim("pending"), "repeat"),
        (stored("paid", "T1", "paygov"), claim("paid"), "repeat"),
        (stored("paid", "T1", "paygov"), claim("paid", "T2"), "duplicate_payment"),
        (stored("paid", "T1", "paygov"), claim("paid", "T1", "vcb"), "duplicate_payment"),
        (stored("paid", "T1", "paygov"), claim("paid", "T9", amount=1), "duplicate_payment"),
        (stored("paid", "T1", "paygov"), claim("pending"), "contradiction"),
        (stored("paid", "T1", "paygov"), claim("failed", "T2"), "stale"),
        (stored("paid", "T1", "paygov"), claim("pending", "T2", "vcb"), "stale"),
        (stored("paid", "T1", "paygov"), claim("failed", "T1"), "contradiction"),
        # Another transaction's news with another amount is no news of this payment, paid or not.
        (stored("paid", "T1", "paygov"), claim("failed", "T2", amount=1), "amount_mismatch"),
        (stored("failed", "T1", "paygov"), claim("pending", "T2", amount=1), "amount_mismatch"),
        (stored("paid", "T1", "paygov"), claim("paid", amount=9000), "transaction_reused"),
    ],
)
def test_a_claim_is_judged_against_the_stored_payment(
    current: PaymentRecord | None, news: Claim, verdict: Verdict
) -> None:
    assert judge(current, news) == verdict


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_address_has_its_own_budget_refilled_with_time() -> None:
    from lienthong.payments.callbacks import RefusalLimiter  # noqa: PLC0415

    clock = Clock()
    limiter = RefusalLimiter(3, total_per_minute=100, clock=clock)
    for _ in range(3):
        assert limiter.allows("10.0.0.1")
        limiter.spend("10.0.0.1")
    assert not limiter.allows("10.0.0.1")
    assert limiter.allows("10.0.0.2")  # another address is not held back by the first
    clock.now += 20  # 3 a minute: one more after 20 s
    assert limiter.allows("10.0.0.1")


def test_many_addresses_together_cannot_pass_the_total_budget() -> None:
    from lienthong.payments.callbacks import RefusalLimiter  # noqa: PLC0415

    clock = Clock()
    limiter = RefusalLimiter(30, total_per_minute=50, max_sources=10, clock=clock)
    recorded = 0
    for n in range(1000):  # an IPv6 sender: a new address for every request
        address = f"2001:db8::{n:x}"
        if limiter.allows(address):
            limiter.spend(address)
            recorded += 1
    assert recorded == 50
    clock.now += 60
    assert limiter.allows("2001:db8::ffff")  # the total refills too
