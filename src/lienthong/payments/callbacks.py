"""Payment callbacks: verify, judge against the payment, record every one, raise ``payment.confirmed`` once.

A callback is trusted only after its scheme verifies it. What a trusted callback may do to its payment is
``payments.state.judge``, applied by the store in one transaction with the callback's record and, when it
pays, the ``payment.confirmed`` event: a reference is paid at most once, and states move forward only.

Every callback is recorded, refused or not, as a bounded summary (``CallbackRecord``): fields cut to
``CLIP`` characters, the body's hash and size, never the body. Callbacks nobody vouched for (unreadable,
too large, a signature that does not hold) are recorded within a budget per sender address
(``refusals_per_minute``); past it they are still refused but only counted, so an anonymous sender cannot
fill the disk, and cannot lock the real peer out either: a callback whose signature holds is always
heard and recorded, from any address.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from lienthong.bus.emit import EventSink, build_event, internal_event_id
from lienthong.clock import Clock, now_ms
from lienthong.errors import InvalidEvent
from lienthong.model import IngestItem
from lienthong.observability.logs import fields
from lienthong.observability.metrics import Metrics
from lienthong.payments.records import CallbackRecord, PaymentRecord, Settlement
from lienthong.payments.schemes import CallbackRefused, CallbackScheme
from lienthong.payments.state import TAKEN, Claim, Verdict
from lienthong.store import Store, units

log = logging.getLogger("lienthong.payments.callbacks")

CLIP = 64
"""Characters kept of a reference or transaction id in a callback's record."""


class RefusalLimiter:
    """Token buckets of recorded refusals: ``per_minute`` per source address, and ``total_per_minute`` for
    all addresses together, refilled continuously.

    The total bounds what the store can grow by whatever the number of addresses (an IPv6 sender has as
    many as it likes); at most ``max_sources`` addresses are remembered (least recently refused forgotten
    first), so the limiter's memory is bounded too.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        total_per_minute: int | None = None,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_source = _Bucket(per_minute, clock)
        self._total = _Bucket(total_per_minute or 10 * per_minute, clock)
        self._max_sources = max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # source → (tokens, at)
        self._all = (self._total.capacity, clock())

    def allows(self, source: str) -> bool:
        """Whether a refusal of ``source`` may still be recorded."""
        return self._total.left(self._all) >= 1.0 and self._per_source.left(self._buckets.get(source)) >= 1.0

    def spend(self, source: str) -> None:
        """One recorded refusal of ``source``."""
        self._all = self._total.take(self._all)
        self._buckets[source] = self._per_source.take(self._buckets.get(source))
        self._buckets.move_to_end(source)
        while len(self._buckets) > self._max_sources:
            self._buckets.popitem(last=False)


class _Bucket:
    """A token bucket's rule: ``per_minute`` tokens at most, refilled continuously; its state is a
    (tokens, at) pair kept by the caller, None meaning full."""

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock

    def left(self, state: tuple[float, float] | None) -> float:
        if state is None:
            return self.capacity
        tokens, at = state
        return min(self.capacity, tokens + (self._clock() - at) * self._rate)

    def take(self, state: tuple[float, float] | None) -> tuple[float, float]:
        return max(0.0, self.left(state) - 1.0), self._clock()


@dataclass(frozen=True)
class Received:
    """What came of a callback that was taken: its verdict and claim."""

    verdict: Verdict
    claim: Claim


class PaymentCallbacks:
    """Verifies callbacks, records every one, and turns a payment into a ``payment.confirmed`` event."""

    def __init__(
        self,
        schemes: Mapping[str, CallbackScheme],
        store: Store,
        events: EventSink,
        metrics: Metrics,
        *,
        limiter: RefusalLimiter | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._schemes = schemes
        self._store = store
        self._clock = clock
        self._events = events
        self._metrics = metrics
        self._limiter = limiter or RefusalLimiter(30)

    def channels(self) -> list[str]:
        return sorted(self._schemes)

    def scheme(self, channel: str) -> CallbackScheme:
        return self._schemes[channel]

    async def refuse(self, channel: str, source: str, body: bytes, verdict: str, message: str) -> NoReturn:
        """Record (within the sender's budget) a callback refused unread, and raise CallbackRefused."""
        now = now_ms(self._clock)
        await self._unverified(_summary(now, channel, source, body, "", "", verdict, "", message))
        raise CallbackRefused(verdict, message)

    async def receive(
        self, channel: str, body: bytes, headers: Mapping[str, str], source: str = ""
    ) -> Received:
        """Raise CallbackRefused (recorded) or KeyError for an unknown channel."""
        scheme = self._schemes[channel]
        data = _json(body)
        if not isinstance(data, dict):
            await self.refuse(channel, source, body, "invalid", "the callback must be a JSON object")
        reference, transaction = scheme.fields(data)
        now = now_ms(self._clock)

        def record(verdict: str, status: str, detail: str) -> CallbackRecord:
            return _summary(now, channel, source, body, reference, transaction, verdict, status, detail)

        if not scheme.verify(data, headers):
            message = "the integrity code does not match: callback refused"
            await self._unverified(record("bad_signature", "", message))
            raise CallbackRefused("bad_signature", message)
        try:
            claim = scheme.read(data)
        except ValueError as exc:
            await self._verified(record("invalid", "", str(exc)))
            raise CallbackRefused("invalid", str(exc)) from exc
        payment = await self._store.run(units.payment, claim.reference)
        try:
            confirmed = self._confirmed(payment, claim) if payment is not None else None
        except InvalidEvent as exc:  # the claim cannot make a storable event: say why, and record it
            message = f"the callback cannot become an event: {exc.message}"
            await self._verified(record("invalid", claim.status, message))
            raise CallbackRefused("invalid", message) from exc
        settlement = Settlement(claim, record("", claim.status, ""), confirmed)
        verdict = await self._store.run(units.settle_payment, settlement, now_ms(self._clock))
        self._metrics.payment_callbacks.labels(channel, verdict).inc()
        if verdict not in TAKEN:
            explained = _explain(verdict, claim, payment)
            log.warning("%s callback refused (%s): %s", channel, verdict, explained,
                        extra=fields(channel=channel, reference=claim.reference, source=source))  # fmt: skip
            raise CallbackRefused(verdict, explained)
        if verdict == "stale":
            log.info("%s callback of another transaction taken, the payment unchanged: %s %s",
                     channel, claim.status, _clip(claim.transaction_id),
                     extra=fields(channel=channel, reference=claim.reference, source=source))  # fmt: skip
        if verdict == "accepted" and confirmed is not None:
            self._events.stored([confirmed])
        return Received(verdict, claim)

    async def _verified(self, record: CallbackRecord) -> None:
        """Record a refusal of a callback whose signature held: always (its sender is the peer itself)."""
        _log_refusal(record)
        self._metrics.payment_callbacks.labels(record.channel, record.verdict).inc()
        await self._store.run(units.record_callback, record)

    async def _unverified(self, record: CallbackRecord) -> None:
        """Record a refusal of a callback nobody vouched for, within its sender's budget; past it, count it
        only. Never refuses anything itself: the peer's own callbacks from that address still go through."""
        if not self._limiter.allows(record.source):
            self._metrics.payment_callbacks.labels(record.channel, "unrecorded").inc()
            return  # nor logged: a stranger's flood must not fill the disk through the log either
        self._limiter.spend(record.source)
        await self._verified(record)  # recorded and logged, once

    def _confirmed(self, payment: PaymentRecord, c: Claim) -> IngestItem | None:
        """The ``payment.confirmed`` event this claim raises if it pays the payment."""
        if c.status != "paid":
            return None
        dossier = orjson.loads(payment.dossier)
        dossier["payment"] = {
            **dossier.get("payment", {}),
            "reference": c.reference,
            "transaction_id": c.transaction_id,
            "amount": c.amount,
            "paid_at": c.occurred_at,
            "channel": c.channel,
            "bank_code": c.bank_code,
        }
        event = build_event(
            event_id=internal_event_id("paid", c.channel, c.transaction_id),
            type="payment.confirmed",
            occurred_at=c.occurred_at,
            unit_code=payment.unit_code,
            dossier=dossier,
        )
        return self._events.plan(event, payment.caller)  # the sender of payment.requested


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _clip(text: str, limit: int = CLIP) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _summary(  # noqa: PLR0917 (one call site per shape; keywords would only repeat the names)
    received_ms: int,
    channel: str,
    source: str,
    body: bytes,
    reference: str,
    transaction_id: str,
    verdict: str,
    status: str,
    detail: str,
) -> CallbackRecord:
    return CallbackRecord(
        received_ms=received_ms,
        channel=channel,
        reference=_clip(reference),
        transaction_id=_clip(transaction_id),
        verdict=verdict,
        status=status,
        source=_clip(source),
        body_sha256=hashlib.sha256(body).hexdigest(),
        body_bytes=len(body),
        detail=_clip(detail, 200),
    )


def _explain(verdict: str, claim: Claim, payment: PaymentRecord | None) -> str:
    ref = _clip(claim.reference)
    if verdict == "unknown_reference" or payment is None:
        return f"no payment with reference {ref!r}"
    if verdict == "amount_mismatch":
        return f"amount {claim.amount} differs from the {payment.amount} requested"
    if verdict == "contradiction":
        return (
            f"payment {ref!r} is already {payment.status}: a later {claim.status!r} would move it"
            " backwards and is refused"
        )
    return f"transaction {_clip(claim.transaction_id)!r} was already confirmed with other content"


def _log_refusal(record: CallbackRecord) -> None:
    log.warning(
        "%s callback refused (%s): %s",
        record.channel,
        record.verdict,
        record.detail,
        extra=fields(channel=record.channel, reference=record.reference, source=record.source),
    )
