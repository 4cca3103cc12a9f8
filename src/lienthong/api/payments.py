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
from lienthong.api.errors import error_response
from lienthong.payments import CallbackRefused, PayGovScheme
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
_REFUSALS: dict[int | str, dict[str, Any]] = {s: {} for s in (400, 403, 404, 409, 413)}
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

    @router.post("/v1/payments/paygov/confirm", responses=_REFUSALS)
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

    @router.post("/v1/payments/banks/{bank}/notify", responses=_REFUSALS)
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

    @router.get("/v1/payments/{reference}", responses={401: {}, 404: {}})
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
