"""Payment callbacks and payment state.

``POST /v1/payments/paygov/confirm``: the payment platform's confirm callback, trusted only when its
MaXacThuc verifies; answered in the platform's own terms (``{MaLoi, MoTaLoi, MaDoiTac, ThoiGianGD,
MaXacThuc}``).
``POST /v1/payments/banks/{bank}/notify``: a bank's HMAC-signed notification.
``GET /v1/payments/{reference}``: a payment's state and pay URL, for the provincial system (bearer token).
Callbacks carry no bearer token: their signature is their credential. Their bodies are capped far below
the event API's (``payments.max_callback_bytes``), read before anything else is done with them.
"""

# No ``from __future__ import annotations``: FastAPI reads the dependency annotations at run time.
import dataclasses
import logging
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from lienthong.api.auth import BearerAuth, Caller
from lienthong.api.errors import STORE_UNAVAILABLE, UNAUTHORIZED, answer, error_response, refusals
from lienthong.api.schemas import BankAnswer, Error, PayGovReply, PaymentState
from lienthong.payments import CONFIRM_FIELDS, CallbackRefused, PayGovScheme
from lienthong.payments.callbacks import PaymentCallbacks
from lienthong.store import Store, units

log = logging.getLogger("lienthong.api.payments")

# (assumed) the platform's answer codes to a callback it must not count as taken: 01 unreadable,
# 06 unknown reference, 07 bad MaXacThuc, 08 amount differs, 09 transaction reused with other content,
# 10 a state that would move the payment backwards, 11 too large.
_PAYGOV_CODES = {
    "invalid": ("01", 400),
    "unknown_reference": ("06", 404),
    "bad_signature": ("07", 403),
    "amount_mismatch": ("08", 409),
    "transaction_reused": ("09", 409),
    "contradiction": ("10", 409),
    "too_large": ("11", 413),
}
_BANK_STATUS = {
    "bad_signature": 403,
    "unknown_reference": 404,
    "amount_mismatch": 409,
    "transaction_reused": 409,
    "contradiction": 409,
    "too_large": 413,
    "invalid": 400,
}
_VERDICT_TEXT = {
    "accepted": "Thành công",
    "repeat": "Đã nhận trước đó",
    "duplicate_payment": "Đã ghi nhận: tham chiếu đã được thanh toán trước đó (thanh toán trùng)",
    "stale": "Đã ghi nhận: giao dịch khác, trạng thái thanh toán không đổi",
}


_PAYGOV_REPLY = {
    "MaLoi": "00",
    "MoTaLoi": "Thành công",
    "MaDoiTac": "LIENTHONG-H56",
    "ThoiGianGD": "20260302081530",
    "MaXacThuc": "9c1e…",
}


def _paygov_refusal(text: str) -> dict[str, Any]:
    # The platform's own terms, or, past the node's body limit or when no platform is configured, ours.
    content = {"application/json": {"schema": {"anyOf": [_ref(PayGovReply), _ref(Error)]}}}
    return {"description": text, "content": content}


def _ref(model: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


_PAYGOV_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: answer(
        PayGovReply,
        _PAYGOV_REPLY,
        "Taken (`MaLoi` 00): it paid, repeats a callback taken before, is a duplicate payment (recorded for"
        " a person), or is news of another transaction that changes nothing (recorded)",
    ),
    400: _paygov_refusal("Unreadable (`MaLoi` 01)"),
    403: _paygov_refusal("`MaXacThuc` does not verify (`MaLoi` 07)"),
    404: _paygov_refusal("Unknown reference (`MaLoi` 06), or no payment platform is configured"),
    409: _paygov_refusal(
        "Amount differs (08), transaction reused (09), or the paying transaction would move backwards (10)"
    ),
    413: _paygov_refusal("Larger than `payments.max_callback_bytes` (`MaLoi` 11) or `server.max_body_bytes`"),
    **refusals({503: STORE_UNAVAILABLE}),
}
_PAYGOV_REQUEST = {
    "requestBody": {
        "required": True,
        "description": "The platform's confirm callback, signed by `MaXacThuc` over its fields",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        name: {"type": ["string", "integer"]} for name in (*CONFIRM_FIELDS, "MaXacThuc")
                    },
                }
            }
        },
    }
}
_BANK_ANSWERS = {
    200: answer(
        BankAnswer,
        {"status": "accepted"},
        "Taken: `accepted`, a `repeat` of a notification taken before, a `duplicate_payment` (recorded for a"
        " person), or `stale`: news of another transaction that changes nothing (recorded)",
    ),
    **refusals(
        {
            400: "Unreadable (`invalid`)",
            403: "The signature does not verify (`bad_signature`)",
            404: "No such bank configured (`unknown_bank`), or unknown reference (`unknown_reference`)",
            409: "`amount_mismatch`, `transaction_reused` or `contradiction` (the paying one backwards)",
            413: "Larger than `payments.max_callback_bytes` (`too_large`) or `server.max_body_bytes`",
            503: STORE_UNAVAILABLE,
        }
    ),
}
_BANK_REQUEST = {
    "requestBody": {
        "required": True,
        "description": "A bank's notification: a JSON object whose configured `fields` are signed"
        " (HMAC-SHA256, hex) in the configured header (`payments.banks.<bank>`)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
_PAYMENT_EXAMPLE = {
    "reference": "H56-LP-000123",
    "dossier_code": "H56.12-260302-0001",
    "unit_code": "000.00.12.H56",
    "amount": 125000,
    "pay_url": "https://paygov.example/pay/H56-LP-000123",
    "status": "paid",
    "transaction_id": "GD-88123",
    "updated_ms": 1772414130000,
    "channel": "paygov",
}
_PAYMENT_ANSWERS = {
    200: answer(PaymentState, _PAYMENT_EXAMPLE, "The payment's state and where to pay it"),
    **refusals(
        {401: UNAUTHORIZED, 404: "No such payment, or another caller's (`not_found`)", 503: STORE_UNAVAILABLE}
    ),
}


class _TooLarge(Exception):
    def __init__(self, read: bytes) -> None:
        self.read = read


def payments_router(
    *, callbacks: PaymentCallbacks, store: Store, auth: BearerAuth, max_callback_bytes: int
) -> APIRouter:
    router = APIRouter()
    Authenticated = Annotated[Caller, Depends(auth)]
    paygov = callbacks.scheme("paygov") if "paygov" in callbacks.channels() else None

    async def capped(request: Request, channel: str) -> bytes:
        """The body; refused (and recorded, within the sender's budget) past the cap."""
        try:
            return await _read_capped(request, max_callback_bytes)
        except _TooLarge as exc:
            message = f"the callback is larger than {max_callback_bytes} bytes"
            await callbacks.refuse(channel, _client(request), exc.read, "too_large", message)

    @router.post("/v1/payments/paygov/confirm", responses=_PAYGOV_ANSWERS, openapi_extra=_PAYGOV_REQUEST)
    async def paygov_confirm(request: Request) -> Response:
        """The payment platform's confirm callback."""
        if not isinstance(paygov, PayGovScheme):
            return error_response(404, "not_found", "no payment platform is configured")
        scheme = paygov
        body = b""
        try:
            body = await capped(request, "paygov")
            received = await callbacks.receive("paygov", body, request.headers, _client(request))
        except CallbackRefused as exc:
            _log_refusal("paygov", request, exc)
            code, status = _PAYGOV_CODES.get(exc.verdict, ("01", 400))
            return _json(status, scheme.reply(code, exc.message, _fields(body)))
        if received.verdict == "duplicate_payment":
            log.warning("duplicate payment recorded for %s", received.claim.reference[:64])
        return _json(200, scheme.reply("00", _VERDICT_TEXT[received.verdict], _fields(body)))

    @router.post("/v1/payments/banks/{bank}/notify", responses=_BANK_ANSWERS, openapi_extra=_BANK_REQUEST)
    async def bank_notify(bank: str, request: Request) -> Response:
        """A bank's signed payment notification."""
        if bank not in callbacks.channels() or bank == "paygov":
            return error_response(404, "unknown_bank", f"no bank {bank[:64]!r} is configured", path="bank")
        try:
            body = await capped(request, bank)
            received = await callbacks.receive(bank, body, request.headers, _client(request))
        except CallbackRefused as exc:
            _log_refusal(bank, request, exc)
            return error_response(_BANK_STATUS.get(exc.verdict, 400), exc.verdict, exc.message)
        return _json(200, {"status": received.verdict})

    @router.get("/v1/payments/{reference}", responses=_PAYMENT_ANSWERS)
    async def get_payment(reference: str, caller: Authenticated) -> Response:
        """A payment's state (initiated, pending, paid, failed) and its pay URL."""
        payment = await store.run(units.payment, reference)
        if payment is None or not caller.may_read(payment.caller):  # another's payment is as good as none
            return error_response(404, "not_found", f"no payment {reference[:64]!r}")
        view = {k: v for k, v in dataclasses.asdict(payment).items() if k not in ("dossier", "caller")}
        return _json(200, view)

    return router


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge(b"")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge(bytes(body[:limit]))
    return bytes(body)


def _fields(body: bytes) -> dict[str, object]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _json(status: int, payload: object) -> Response:
    return Response(orjson.dumps(payload), status, media_type="application/json")


def _log_refusal(channel: str, request: Request, exc: CallbackRefused) -> None:
    # At debug level: an anonymous sender would otherwise fill the log instead of the store. Refusals are
    # recorded (within a budget) and counted (lienthong_payment_callbacks_total).
    log.debug("refused a %s callback from %s: %s", channel, _client(request), exc.message)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
