"""A payment's states and what a verified callback may do to them: paid at most once, forward only.

Money is where a careless peer or a replayed callback costs most: one fee paid twice must never become two
receipts, and a late "pending" must not undo a "paid" whose receipt is already issued. ``judge`` is the
whole rule, a pure function of the payment as stored and the callback's claim; the store applies it in the
same transaction that reads the payment, so two callbacks racing each other are judged one after the other.
"""

from __future__ import annotations

from lienthong.payments.records import Claim, PaymentRecord, PaymentStatus, Verdict

__all__ = ["RANK", "TAKEN", "Claim", "PaymentStatus", "Verdict", "judge"]

RANK: dict[str, int] = {"initiated": 0, "pending": 1, "failed": 2, "paid": 3}
"""Forward only: a callback may move a payment to a higher rank, never lower. A failed attempt may be
followed by a successful one (the citizen pays again on the same bill); nothing follows "paid"."""

TAKEN: frozenset[str] = frozenset({"accepted", "repeat", "duplicate_payment", "stale"})
"""Verdicts answered as received (the peer need not send again); the others are refusals."""


def judge(current: PaymentRecord | None, claim: Claim) -> Verdict:
    """What ``claim`` may do to the payment ``current`` (None: no payment with that reference)."""
    if current is None:
        return "unknown_reference"
    same_transaction = (current.channel, current.transaction_id) == (claim.channel, claim.transaction_id)
    if same_transaction and current.amount != claim.amount:
        return "transaction_reused"
    if current.status == "paid":
        if claim.status == "paid":
            return "repeat" if same_transaction else "duplicate_payment"
        if not same_transaction and current.amount != claim.amount:
            return "amount_mismatch"  # as for a payment not yet paid: never taken as news of it
        return _backwards(same_transaction)
    if current.amount != claim.amount:
        return "amount_mismatch"
    if claim.status == current.status and same_transaction:
        return "repeat"
    if RANK[claim.status] < RANK[current.status]:
        return _backwards(same_transaction)
    return "accepted"


def _backwards(same_transaction: bool) -> Verdict:
    """News of a lower rank than the payment's. From the transaction that moved the payment, it contradicts
    it: refused, for a person to look at. From another one, it is news of an attempt that did not pay (the
    citizen's failed first try delivered after the paying second, or a second try after paying): taken,
    so that the platform stops sending it, and recorded with why; the payment does not move either way.
    Its time is not weighed: a platform's clock against ours proves nothing, and a failed attempt cannot
    unpay the transaction that paid (money that never arrived is the bank reconciliation's to find)."""
    return "contradiction" if same_transaction else "stale"
