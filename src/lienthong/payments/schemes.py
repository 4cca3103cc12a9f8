"""How each payment channel proves its callbacks, and what they say.

The portal's payment platform (PayGov-style, DESIGN §4) signs each message with ``MaXacThuc``: the
lowercase hex SHA-256 of its fields joined by ``|`` with the shared secret last. Banks' own notifications
commonly carry an HMAC-SHA256 over named fields in a header. Both are ``CallbackScheme``s, so another
bank's scheme is one more class. A callback is trusted only after its scheme verifies it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from lienthong.mappings.dates import VIETNAM
from lienthong.payments.state import Claim, PaymentStatus

PHIEN_BAN = "1.0.6"
INIT_FIELDS = (
    "LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "SoTien", "LoaiHinhThanhToan", "MaKenhThanhToan",
    "MaThietBi", "NgonNgu", "MaTienTe", "MaNganHang", "ThongTinGiaoDich", "ThoiGianGD", "Ip",
)  # fmt: skip
CONFIRM_FIELDS = (
    "LoaiBanTin", "MaLoi", "MaDoiTac", "MaThamChieu", "SoTien", "MaTienTe", "MaGiaoDich", "MaNganHang",
    "ThoiGianGD", "ThongTinGiaoDich",
)  # fmt: skip
# Seen in a public client (docs/contracts.md §2): QUERY and GET_BILL are signed over these.
QUERY_FIELDS = ("LoaiBanTin", "PhienBan", "MaDoiTac", "MaThamChieu", "ThoiGianGD")
# (assumed) our own signature of a confirm reply, for ``reply_code: sign``.
REPLY_FIELDS = ("MaLoi", "MaDoiTac", "ThoiGianGD")
PAYGOV_STATUS: dict[str, PaymentStatus] = {"1": "paid", "3": "pending", "4": "failed"}

ReplyCode = Literal["echo", "sign"]


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


class CallbackRefused(Exception):
    """``verdict`` is what the record says (bad_signature, invalid, too_large, or a
    ``payments.state.Verdict`` refusal)."""

    def __init__(self, verdict: str, message: str) -> None:
        self.verdict = verdict
        self.message = message
        super().__init__(message)


class CallbackScheme(Protocol):
    """How one payment channel proves its callbacks, and what they say."""

    channel: str

    def verify(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> bool: ...

    def read(self, body: Mapping[str, Any]) -> Claim:
        """Raise ValueError naming the field when the callback lacks one."""
        ...

    def fields(self, body: Mapping[str, Any]) -> tuple[str, str]:
        """The reference and transaction id as sent (unverified), for the record."""
        ...


class PayGovScheme:
    """The payment platform's confirm callback: MaXacThuc over CONFIRM_FIELDS and the shared secret.

    Its status is ``MaLoi`` alone ("00" paid, anything else failed), as a public receiver reads it: the
    confirm carries no ``TrangThaiGD`` (docs/contracts.md §2). A ``TrangThaiGD`` that is there anyway is
    not signed: it can only mark an unpaid one pending (3).
    """

    channel = "paygov"

    def __init__(self, secret: str, partner_code: str, *, reply_code: ReplyCode = "echo") -> None:
        self._secret = secret
        self._partner_code = partner_code
        self._reply_code = reply_code

    def verify(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        given = field_text(body.get("MaXacThuc")).lower()
        expected = paygov_code(body, CONFIRM_FIELDS, self._secret)
        return _same(given, expected) and body.get("MaDoiTac") == self._partner_code

    def read(self, body: Mapping[str, Any]) -> Claim:
        # MaLoi is signed, TrangThaiGD is not: only MaLoi says "paid". TrangThaiGD, when present, may
        # only tell a pending payment (3) from a failed one among those MaLoi says are not paid.
        status: PaymentStatus = "paid" if field_text(body.get("MaLoi")) == "00" else "failed"
        state = body.get("TrangThaiGD")
        if state not in (None, ""):
            if field_text(state) not in PAYGOV_STATUS:
                raise ValueError(f"TrangThaiGD must be 1, 3 or 4, got {state!r:.40}")
            if status != "paid" and PAYGOV_STATUS[field_text(state)] == "pending":
                status = "pending"
        # Signed (CONFIRM_FIELDS) and asked for as VND at INIT: an amount in another currency pays no fee.
        currency = field_text(body.get("MaTienTe"))
        if currency not in ("", "VND"):
            raise ValueError(f"MaTienTe must be VND, got {currency!r:.40}")
        return Claim(
            self.channel,
            _required(body, "MaGiaoDich"),
            _required(body, "MaThamChieu"),
            _amount(body, "SoTien"),
            status,
            _paygov_time(_required(body, "ThoiGianGD")),
            field_text(body.get("MaNganHang")),
        )

    def fields(self, body: Mapping[str, Any]) -> tuple[str, str]:
        return field_text(body.get("MaThamChieu")), field_text(body.get("MaGiaoDich"))

    def reply(self, code: str, message: str, request: Mapping[str, Any]) -> dict[str, str]:
        """The confirm reply ``{MaLoi, MoTaLoi, MaDoiTac, ThoiGianGD, MaXacThuc}``.

        ``echo`` (seen in a public receiver) returns the request's MaXacThuc; ``sign`` (assumed) signs
        MaLoi|MaDoiTac|ThoiGianGD with the shared secret.
        """
        reply = {
            "MaLoi": code,
            "MoTaLoi": message,
            "MaDoiTac": self._partner_code,
            "ThoiGianGD": datetime.now(VIETNAM).strftime("%Y%m%d%H%M%S"),
        }
        if self._reply_code == "sign":
            reply["MaXacThuc"] = paygov_code(reply, REPLY_FIELDS, self._secret)
        else:
            reply["MaXacThuc"] = field_text(request.get("MaXacThuc"))[:128]
        return reply


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
        return _same(headers.get(self._header, "").lower(), self.sign(body))

    def read(self, body: Mapping[str, Any]) -> Claim:
        status = body.get("status", "paid")
        if status not in ("paid", "failed"):
            raise ValueError(f"status must be paid or failed, got {status!r:.40}")
        paid_at = _required(body, "paid_at")
        try:
            aware = datetime.fromisoformat(paid_at).tzinfo is not None
        except ValueError:
            aware = False
        if not aware:
            raise ValueError(f"paid_at must be ISO 8601 with its UTC offset, got {paid_at!r:.40}")
        return Claim(
            self.channel,
            _required(body, "transaction_id"),
            _required(body, "reference"),
            _amount(body, "amount"),
            status,
            paid_at,
        )

    def fields(self, body: Mapping[str, Any]) -> tuple[str, str]:
        return field_text(body.get("reference")), field_text(body.get("transaction_id"))


def _required(body: Mapping[str, Any], name: str) -> str:
    value = field_text(body.get(name)).strip()
    if not value:
        raise ValueError(f"{name} is missing")
    if len(value) > 128:
        raise ValueError(f"{name} is longer than 128 characters")
    return value


def _amount(body: Mapping[str, Any], name: str) -> int:
    text = _required(body, name)
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise ValueError(f"{name} must be a whole number of đồng, got {text!r:.40}")
    return int(text)


def _paygov_time(text: str) -> str:
    """``yyyyMMddHHmmss`` in Vietnam time → ISO 8601 with the offset."""
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=VIETNAM).isoformat()
    except ValueError:
        raise ValueError(f"ThoiGianGD must be yyyyMMddHHmmss, got {text!r:.40}") from None


def _same(given: str, expected: str) -> bool:
    """``hmac.compare_digest`` on the UTF-8 bytes: on text it raises for anything outside ASCII, and a
    forged signature must be refused as one, not answered with a 500."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))
