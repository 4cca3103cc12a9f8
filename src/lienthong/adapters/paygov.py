"""The payment platform's INIT (create a payment, get its pay URL) and QUERY, as a bus adapter.

INIT is reached through the outbox (route ``payment.requested`` → ``paygov.INIT``), so it is retried like
any delivery. A retry must never create a second payment: on any attempt after the first, the adapter asks
QUERY for the reference first, and a duplicate-reference answer to INIT is looked up the same way. The
payment is recorded (reference, dossier, amount, pay URL) for the confirm callback to find.

Message and reply field names follow DESIGN §4; the reply's ``UrlThanhToan`` and the error codes below
are (assumed) and configurable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from lienthong.adapters.base import Receipt, json_body, map_transport_errors, raise_for_status
from lienthong.adapters.http import HttpPeer
from lienthong.clock import Clock, now_ms
from lienthong.errors import PermanentError, RetryableError, StoreError
from lienthong.mappings.dates import VIETNAM
from lienthong.model import Message
from lienthong.payments import INIT_FIELDS, PHIEN_BAN, QUERY_FIELDS, field_text, paygov_code
from lienthong.payments.records import PaymentRecord
from lienthong.store import Store, units


def _check_fee_lines(body: dict[str, Any], reference: str, destination: str) -> None:
    """Refuse (a dead letter, before any money moves) an INIT whose amount is not the sum of its fee lines
    (``ThongTinBienLai.PhiLePhi``): the e-receipt lists those lines, so a citizen charged another amount
    would get a receipt that does not say what they paid."""
    receipt = body.get("ThongTinBienLai")
    lines = receipt.get("PhiLePhi") if isinstance(receipt, dict) else None
    if not isinstance(lines, list) or not lines:
        return
    try:
        total = sum(Decimal(field_text(line.get("SoTien"))) for line in lines if isinstance(line, dict))
        asked = Decimal(field_text(body.get("SoTien")))
    except InvalidOperation:
        return  # the platform judges amounts it cannot read; nothing here to compare
    if total != asked:
        raise PermanentError(
            f"payment {reference} asks {asked} đ but its fee lines add up to {total} đ: the e-receipt lists"
            " the fee lines, so the amount charged must be their sum",
            destination=destination,
            operation="INIT",
        )


def _same_amount(one: str, other: str) -> bool:
    """Two amounts as the platform and the mapping write them ("125000", "125000.00"): equal as numbers."""
    try:
        return Decimal(one) == Decimal(other)
    except InvalidOperation:
        return one == other


class PayGovReply(BaseModel):
    """An answer to INIT or QUERY. Codes come as text or numbers; both read as text.

    Two shapes are read (``of``): the flat ``{"MaLoi", "MoTaLoi", "UrlThanhToan", …}``, and the one a public
    client reads, ``{"error_code": "0", "message": "<a JSON string holding UrlThanhToan …>"}`` (an error:
    ``error_code`` its code, ``message`` its text).
    """

    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)

    MaLoi: str
    MoTaLoi: str = ""
    UrlThanhToan: str = ""  # INIT, and QUERY of a known payment
    MaThamChieu: str = ""
    TrangThaiGD: str = ""  # QUERY: 1 paid, 3 pending, 4 failed
    MaGiaoDich: str = ""
    SoTien: str = ""

    @classmethod
    def of(cls, answer: Any) -> PayGovReply:
        """Raises ValidationError when ``answer`` is neither shape."""
        if isinstance(answer, dict) and "MaLoi" not in answer and "error_code" in answer:
            answer = _unwrapped(answer)
        return cls.model_validate(answer)


def _unwrapped(answer: dict[str, Any]) -> dict[str, Any]:
    code = field_text(answer["error_code"])
    message = answer.get("message")
    inner: Any = None
    if isinstance(message, str) and message.lstrip().startswith("{"):
        try:
            inner = orjson.loads(message)
        except orjson.JSONDecodeError:
            inner = None
    elif isinstance(message, dict):
        inner = message
    fields = inner if isinstance(inner, dict) else {"MoTaLoi": field_text(message)}
    return {**fields, "MaLoi": "00" if code in ("0", "00") else code}


@dataclass(frozen=True)
class PayGovSettings:
    partner_code: str  # MaDoiTac
    secret: str
    service_path: str = "/api/paygov"
    duplicate_codes: frozenset[str] = frozenset({"13"})  # (assumed) "this MaThamChieu already exists"
    not_found_codes: frozenset[str] = frozenset({"06"})  # (assumed) QUERY: "no such payment"


class PayGovAdapter:
    operations = ("INIT",)

    def __init__(
        self, name: str, peer: HttpPeer, settings: PayGovSettings, store: Store, *, clock: Clock
    ) -> None:
        self.name = name
        self._peer = peer
        self._settings = settings
        self._endpoint = peer.endpoint(settings.service_path)
        self._store = store
        self._clock = clock

    async def deliver(self, message: Message, body: dict[str, Any]) -> Receipt:
        """``body`` is the INIT message's business fields (the bundled paygov_init mapping)."""
        if message.operation != "INIT":
            raise PermanentError(
                f"unknown operation {message.operation!r}",
                destination=self.name,
                operation=message.operation,
            )
        reference = field_text(body.get("MaThamChieu"))
        if not reference:
            raise PermanentError(
                "the mapped payment has no MaThamChieu", destination=self.name, operation="INIT"
            )
        _check_fee_lines(body, reference, self.name)
        with map_transport_errors(self.name, "INIT"):
            existing = await self._query(reference) if message.attempts > 0 else None
            if existing is None:
                answer = await self._send(
                    "INIT", {**body, "MaNganHang": body.get("MaNganHang", "")}, INIT_FIELDS
                )
                code = answer.MaLoi
                if code in self._settings.duplicate_codes:
                    existing = await self._query(reference)
                elif code != "00":
                    raise self._refused("INIT", answer)
                else:
                    existing = answer
        if existing is None:
            raise PermanentError(
                "INIT says the reference exists but QUERY cannot find it",
                destination=self.name,
                operation="INIT",
            )
        asked, held = field_text(body.get("SoTien")), existing.SoTien
        if held and asked and not _same_amount(held, asked):
            # The platform keeps the amount first asked for: the citizen would pay that, not this.
            raise PermanentError(
                f"payment {reference} exists at the platform for {held} đ, not the {asked} đ asked now:"
                " a new amount needs a new reference",
                destination=self.name,
                operation="INIT",
            )
        if not existing.UrlThanhToan:
            # A success with nowhere for the citizen to pay is no payment yet; the next attempt asks QUERY.
            raise RetryableError(
                f"the platform answered INIT of {reference} without UrlThanhToan",
                destination=self.name,
                operation="INIT",
            )
        await self._record(message, body, existing.UrlThanhToan)
        return Receipt(http_status=200)

    async def query(self, reference: str) -> PayGovReply | None:
        """The platform's view of one payment (TrangThaiGD, MaGiaoDich, SoTien), or None if unknown."""
        with map_transport_errors(self.name, "QUERY"):
            return await self._query(reference)

    async def aclose(self) -> None:
        await self._peer.aclose()

    async def _query(self, reference: str) -> PayGovReply | None:
        answer = await self._send("QUERY", {"MaThamChieu": reference}, QUERY_FIELDS)
        code = answer.MaLoi
        if code in self._settings.not_found_codes:
            return None
        if code != "00":
            raise self._refused("QUERY", answer)
        return answer

    async def _send(self, kind: str, fields: dict[str, Any], signed: tuple[str, ...]) -> PayGovReply:
        message = {
            **fields,
            "LoaiBanTin": kind,
            "PhienBan": PHIEN_BAN,
            "MaDoiTac": self._settings.partner_code,
            "ThoiGianGD": datetime.now(VIETNAM).strftime("%Y%m%d%H%M%S"),
        }
        message["MaXacThuc"] = paygov_code(message, signed, self._settings.secret)
        response = await self._endpoint.post(orjson.dumps(message), {"content-type": "application/json"})
        raise_for_status(response, self.name, kind)
        answer = json_body(response, self.name, kind)
        try:
            return PayGovReply.of(answer)
        except ValidationError as exc:
            # A 200 without MaLoi or error_code is not the platform answering: a gateway page or a
            # half-sent reply.
            raise RetryableError(
                f"{kind} answer has neither MaLoi nor error_code: {str(answer)[:120]}",
                destination=self.name,
                operation=kind,
            ) from exc

    def _refused(self, kind: str, answer: PayGovReply) -> PermanentError:
        code = answer.MaLoi
        message = f"payment platform refused {kind}: {answer.MoTaLoi}".rstrip(": ")
        return PermanentError(message, destination=self.name, operation=kind, status=200, remote_code=code)

    async def _record(self, message: Message, body: dict[str, Any], pay_url: str) -> None:
        event = message.event
        record = self._store.run(
            units.save_payment,
            PaymentRecord(
                reference=field_text(body["MaThamChieu"]),
                dossier_code=message.dossier_code,
                unit_code=event.unit_code,
                amount=int(field_text(body.get("SoTien")) or 0),
                dossier=orjson.dumps(event.dossier).decode(),
                pay_url=pay_url,
                status="initiated",
                transaction_id="",
                updated_ms=now_ms(self._clock),
                caller=event.caller,
            ),
        )
        try:
            await record
        except StoreError as exc:
            # The payment exists at the platform; the next attempt finds it with QUERY and records it.
            raise RetryableError(
                f"cannot record the payment: {exc}", destination=self.name, operation="INIT"
            ) from exc
