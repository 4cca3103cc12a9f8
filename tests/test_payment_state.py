"""The payment state rule, as a table: paid at most once, forward only (payments.state.judge)."""

from __future__ import annotations

import pytest

from lienthong.bus.store import PaymentRecord
from lienthong.payments import Claim, PaymentStatus, Verdict, judge


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
        (stored("failed", "T1", "paygov"), claim("pending", "T2"), "contradiction"),
        (stored("pending", "T1", "paygov"), claim("pending"), "repeat"),
        (stored("paid", "T1", "paygov"), claim("paid"), "repeat"),
        (stored("paid", "T1", "paygov"), claim("paid", "T2"), "duplicate_payment"),
        (stored("paid", "T1", "paygov"), claim("paid", "T1", "vcb"), "duplicate_payment"),
        (stored("paid", "T1", "paygov"), claim("paid", "T9", amount=1), "duplicate_payment"),
        (stored("paid", "T1", "paygov"), claim("pending"), "contradiction"),
        (stored("paid", "T1", "paygov"), claim("failed", "T2"), "contradiction"),
        (stored("paid", "T1", "paygov"), claim("paid", amount=9000), "transaction_reused"),
    ],
)
def test_a_claim_is_judged_against_the_stored_payment(
    current: PaymentRecord | None, news: Claim, verdict: Verdict
) -> None:
    assert judge(current, news) == verdict
