"""A payment's records: what lienthong asked for, what callbacks claimed, and what a person must look at.

Plain data, imported by the store and the adapters as well as by this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from lienthong.model import IngestItem

PaymentStatus = Literal["initiated", "pending", "paid", "failed"]
Verdict = Literal[
    "accepted",  # the payment moved forward (to paid: payment.confirmed is raised)
    "repeat",  # the same news again: taken, nothing changes
    "duplicate_payment",  # another payment for a reference already paid: a finding, never a receipt
    "contradiction",  # the same transaction going backwards: refused, payment unchanged
    "stale",  # news of another transaction that did not pay (a failed try heard after the paying one):
    # taken and recorded with why, payment unchanged
    "unknown_reference",
    "amount_mismatch",
    "transaction_reused",  # a transaction id already confirmed with other content
]


class Claim(NamedTuple):
    """What a verified callback says, in our words."""

    channel: str
    transaction_id: str
    reference: str
    amount: int
    status: PaymentStatus
    occurred_at: str  # ISO 8601 with the offset
    bank_code: str = ""


@dataclass(frozen=True)
class PaymentRecord:
    """A fee payment lienthong asked the payment platform for: keyed by our reference (MaThamChieu).

    ``dossier`` is the dossier as the request carried it (JSON), so the confirmation event can carry it on.
    ``channel`` and ``transaction_id`` name the payment that moved it last (the one that paid it, once paid).
    """

    reference: str
    dossier_code: str
    unit_code: str
    amount: int
    dossier: str
    pay_url: str
    status: str
    transaction_id: str
    updated_ms: int
    channel: str = ""
    caller: str = ""  # who asked for the payment (the payment.requested event's sender)


@dataclass(frozen=True)
class CallbackRecord:
    """One payment callback received, trusted or not: a bounded summary, never the body itself.

    ``reference`` and ``transaction_id`` are as sent, cut to ``CLIP`` characters (a refused callback's
    fields are whatever its sender chose); ``body_sha256`` and ``body_bytes`` identify the whole body.
    ``status`` is what the callback claimed; ``verdict`` what came of it; ``detail`` why, in a line.
    """

    received_ms: int
    channel: str
    reference: str
    transaction_id: str
    verdict: str
    status: str
    source: str = ""
    body_sha256: str = ""
    body_bytes: int = 0
    detail: str = ""


@dataclass(frozen=True)
class PaymentFinding:
    """Something about money a person must look at: another payment for a reference already paid."""

    at_ms: int
    kind: str
    reference: str
    channel: str
    transaction_id: str
    amount: int
    detail: str


class Settlement(NamedTuple):
    """A verified callback to apply to its payment in one transaction (``OutboxStore.settle_payment``).

    ``confirmed`` is the ``payment.confirmed`` event to store if, and only if, this callback pays the
    payment; ``record`` is the callback's summary, stored with the verdict whatever it is.
    """

    claim: Claim
    record: CallbackRecord
    confirmed: IngestItem | None
