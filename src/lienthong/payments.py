"""Online fees: the payment platform's integrity code, callback schemes, and the confirm-callback handler.

The portal's payment platform (PayGov-style, DESIGN §4) signs each message with ``MaXacThuc``: the
lowercase hex SHA-256 of its fields joined by ``|`` with the shared secret last. Banks' own notifications
commonly carry an HMAC-SHA256 over named fields in a header. Both are ``CallbackScheme``s, so another
bank's scheme is one more class. A callback is trusted only after its scheme verifies it; a bad one is
refused and recorded. A verified "paid" becomes a ``payment.confirmed`` event, idempotent on the
platform's transaction id, so a repeated callback is accepted once.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, Protocol

import orjson

from lienthong.bus.envelope import parse_body
from lienthong.bus.ingest import Ingestor
from lienthong.bus.outbox import Outbox
from lienthong.bus.store import CallbackRecord, PaymentRecord
from lienthong.mappings.dates import VIETNAM

PHIEN_BAN = "1.0.6"
INIT_FIELDS = (
    "LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "SoTien", "LoaiHinhThanhToan", "MaKenhThanhToan",
    "MaThietBi", "NgonNgu", "MaTienTe", "MaNganHang", "ThongTinGiaoDich", "ThoiGianGD", "Ip",
)  # fmt: skip
CONFIRM_FIELDS = (
    "LoaiBanTin", "MaLoi", "MaDoiTac", "MaThamChieu", "SoTien", "MaTienTe", "MaGiaoDich", "MaNganHang",
    "ThoiGianGD", "ThongTinGiaoDich",
)  # fmt: skip
# (assumed) QUERY is not in the public description: signed like the others, over what identifies it.
QUERY_FIELDS = ("LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "ThoiGianGD")
PAYGOV_STATUS: dict[str, PaymentStatus] = {"1": "paid", "3": "pending", "4": "failed"}

PaymentStatus = Literal["initiated", "paid", "pending", "failed"]


def field_text(value: Any) -> str:
    """A field as it enters the signed string: absent is empty, whole numbers have no decimals."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def paygov_code(message: Mapping[str, Any], fields: Sequence[str], secret: str) -> str:
    """``MaXacThuc``: lowercase hex SHA-256 of ``f1|f2|...|fn|secret`` (UTF-8)."""
    text = "|".join([*(field_text(message.get(f)) for f in fields), secret])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Confirmation:
    """A verified callback, in our words."""

    channel: str
    transaction_id: str
    reference: str
    amount: int
    status: PaymentStatus
    occurred_at: str  # ISO 8601 with the offset
    bank_code: str = ""


class CallbackRefused(Exception):
    """``verdict`` is what the record says (bad_signature, invalid, unknown_reference, amount_mismatch)."""

    def __init__(self, verdict: str, message: str) -> None:
        self.verdict = verdict
        self.message = message
        super().__init__(message)


class CallbackScheme(Protocol):
    """How one payment channel proves its callbacks, and what they say."""

    channel: str

    def verify(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> bool: ...

    def read(self, body: Mapping[str, Any]) -> Confirmation:
        """Raise ValueError naming the field when the callback lacks one."""
        ...


class PayGovScheme:
    """The payment platform's confirm callback: MaXacThuc over CONFIRM_FIELDS and the shared secret."""

    channel = "paygov"

    def __init__(self, secret: str, partner_code: str) -> None:
        self._secret = secret
        self._partner_code = partner_code

    def verify(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        given = str(body.get("MaXacThuc", "")).lower()
        expected = paygov_code(body, CONFIRM_FIELDS, self._secret)
        return hmac.compare_digest(given, expected) and body.get("MaDoiTac") == self._partner_code

    def read(self, body: Mapping[str, Any]) -> Confirmation:
        status = PAYGOV_STATUS.get(field_text(body.get("TrangThaiGD")))
        if status is None:
            raise ValueError(f"TrangThaiGD must be 1, 3 or 4, got {body.get('TrangThaiGD')!r}")
        if status == "paid" and field_text(body.get("MaLoi")) != "00":
            status = "failed"
        return Confirmation(
            self.channel,
            _required(body, "MaGiaoDich"),
            _required(body, "MaThamChieu"),
            _amount(body, "SoTien"),
            status,
            _paygov_time(_required(body, "ThoiGianGD")),
            field_text(body.get("MaNganHang")),
        )


class HmacFieldsScheme:
    """A bank's notification: hex HMAC-SHA256 over the named fields joined by ``|``, in a header.

    The notification's own keys are ours (assumed; keep them configurable per bank):
    transaction_id, reference, amount, paid_at (ISO 8601), status (paid or failed).
    """

    def __init__(self, channel: str, secret: str, fields: Sequence[str], header: str = "x-signature") -> None:
        self.channel = channel
        self._secret = secret.encode()
        self._fields = tuple(fields)
        self._header = header.lower()

    def sign(self, body: Mapping[str, Any]) -> str:
        text = "|".join(field_text(body.get(f)) for f in self._fields)
        return hmac.new(self._secret, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def verify(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        return hmac.compare_digest(headers.get(self._header, "").lower(), self.sign(body))

    def read(self, body: Mapping[str, Any]) -> Confirmation:
        status = body.get("status", "paid")
        if status not in ("paid", "failed"):
            raise ValueError(f"status must be paid or failed, got {status!r}")
        paid_at = _required(body, "paid_at")
        try:
            datetime.fromisoformat(paid_at)
        except ValueError:
            raise ValueError(f"paid_at must be ISO 8601, got {paid_at!r}") from None
        return Confirmation(
            self.channel,
            _required(body, "transaction_id"),
            _required(body, "reference"),
            _amount(body, "amount"),
            status,
            paid_at,
        )


class PaymentCallbacks:
    """Verifies callbacks, records every one, and turns a payment into a ``payment.confirmed`` event."""

    def __init__(
        self,
        schemes: Mapping[str, CallbackScheme],
        outbox: Outbox,
        ingestor: Ingestor,
        *,
        dossier_code_field: str,
    ) -> None:
        self._schemes = schemes
        self._outbox = outbox
        self._ingestor = ingestor
        self._code_field = dossier_code_field

    def channels(self) -> list[str]:
        return sorted(self._schemes)

    async def receive(self, channel: str, body: Any, headers: Mapping[str, str]) -> Confirmation:
        """Raise CallbackRefused (recorded) or KeyError for an unknown channel."""
        scheme = self._schemes[channel]
        if not isinstance(body, dict):
            await self._record(channel, "", "", "invalid", "")
            raise CallbackRefused("invalid", "the callback must be a JSON object")
        if not scheme.verify(body, headers):
            await self._record(
                channel, str(body.get("MaThamChieu", body.get("reference", ""))), "", "bad_signature", ""
            )
            raise CallbackRefused("bad_signature", "the integrity code does not match: callback refused")
        try:
            confirmation = scheme.read(body)
        except ValueError as exc:
            await self._record(channel, "", "", "invalid", "")
            raise CallbackRefused("invalid", str(exc)) from exc
        await self._settle(confirmation)
        return confirmation

    async def _settle(self, c: Confirmation) -> None:
        payment = await self._outbox.payment(c.reference)
        if payment is None:
            await self._record(c.channel, c.reference, c.transaction_id, "unknown_reference", c.status)
            raise CallbackRefused("unknown_reference", f"no payment with reference {c.reference!r}")
        if payment.amount != c.amount:
            await self._record(c.channel, c.reference, c.transaction_id, "amount_mismatch", c.status)
            raise CallbackRefused(
                "amount_mismatch", f"amount {c.amount} differs from the {payment.amount} requested"
            )
        if c.status == "paid":
            await self._ingest(payment, c)
        await self._outbox.save_payment(
            replace(
                payment, status=c.status, transaction_id=c.transaction_id, updated_ms=self._outbox.now_ms()
            )
        )
        await self._record(c.channel, c.reference, c.transaction_id, "accepted", c.status)

    async def _ingest(self, payment: PaymentRecord, c: Confirmation) -> None:
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
        event = {
            "event_id": f"{c.channel}:{c.transaction_id}",
            "type": "payment.confirmed",
            "occurred_at": c.occurred_at,
            "unit_code": payment.unit_code,
            "dossier": dossier,
        }
        parsed, _ = parse_body(orjson.dumps(event), dossier_code_field=self._code_field, max_events=1)
        await self._ingestor.accept(parsed)

    async def _record(
        self, channel: str, reference: str, transaction_id: str, verdict: str, status: str
    ) -> None:
        await self._outbox.record_callback(
            CallbackRecord(self._outbox.now_ms(), channel, reference, transaction_id, verdict, status)
        )


def _required(body: Mapping[str, Any], name: str) -> str:
    value = field_text(body.get(name)).strip()
    if not value:
        raise ValueError(f"{name} is missing")
    return value


def _amount(body: Mapping[str, Any], name: str) -> int:
    text = _required(body, name)
    if not text.isdigit():
        raise ValueError(f"{name} must be a whole number of đồng, got {text!r}")
    return int(text)


def _paygov_time(text: str) -> str:
    """``yyyyMMddHHmmss`` in Vietnam time → ISO 8601 with the offset."""
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=VIETNAM).isoformat()
    except ValueError:
        raise ValueError(f"ThoiGianGD must be yyyyMMddHHmmss, got {text!r}") from None
