"""Payment callbacks and payment state.

``POST /v1/payments/paygov/confirm``: the payment platform's confirm callback, trusted only when its
MaXacThuc verifies; answered in the platform's own terms (``MaLoi``).
``POST /v1/payments/banks/{bank}/notify``: a bank's HMAC-signed notification.
``GET /v1/payments/{reference}``: a payment's state and pay URL, for the provincial system (bearer token).
Callbacks carry no bearer token: their signature is their credential.
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
from lienthong.bus.outbox import Outbox
from lienthong.errors import IdempotencyConflict
from lienthong.payments import CallbackRefused, PaymentCallbacks

log = logging.getLogger("lienthong.api.payments")

# (assumed) the platform's answer codes to a callback: 00 taken, 01 unreadable, 06 unknown reference,
# 07 bad MaXacThuc, 08 amount differs.
_PAYGOV_CODES = {
    "invalid": ("01", 400),
    "unknown_reference": ("06", 404),
    "bad_signature": ("07", 403),
    "amount_mismatch": ("08", 409),
}


def payments_router(*, callbacks: PaymentCallbacks, outbox: Outbox, auth: BearerAuth) -> APIRouter:
    router = APIRouter()
    Authenticated = Annotated[Caller, Depends(auth)]

    @router.post("/v1/payments/paygov/confirm", responses={s: {} for s in (400, 403, 404, 409)})
    async def paygov_confirm(request: Request) -> Response:
        """The payment platform's confirm callback."""
        body = _json(await request.body())
        try:
            await callbacks.receive("paygov", body, request.headers)
        except CallbackRefused as exc:
            log.warning("refused a paygov callback from %s: %s", _client(request), exc.message)
            code, status = _PAYGOV_CODES.get(exc.verdict, ("01", 400))
            return _paygov(status, code, exc.message)
        except IdempotencyConflict as exc:
            return _paygov(409, "09", str(exc))
        return _paygov(200, "00", "Thành công")

    @router.post("/v1/payments/banks/{bank}/notify", responses={s: {} for s in (400, 403, 404, 409)})
    async def bank_notify(bank: str, request: Request) -> Response:
        """A bank's signed payment notification."""
        if bank not in callbacks.channels() or bank == "paygov":
            return error_response(404, "unknown_bank", f"no bank {bank!r} is configured", path="bank")
        body = _json(await request.body())
        try:
            await callbacks.receive(bank, body, request.headers)
        except CallbackRefused as exc:
            log.warning("refused a %s notification from %s: %s", bank, _client(request), exc.message)
            status = {"bad_signature": 403, "unknown_reference": 404, "amount_mismatch": 409}.get(
                exc.verdict, 400
            )
            return error_response(status, exc.verdict, exc.message)
        except IdempotencyConflict as exc:
            return error_response(409, "transaction_reused", str(exc))
        return Response(orjson.dumps({"status": "accepted"}), media_type="application/json")

    @router.get("/v1/payments/{reference}", responses={401: {}, 404: {}})
    async def get_payment(reference: str, caller: Authenticated) -> Response:
        """A payment's state (initiated, pending, paid, failed) and its pay URL."""
        payment = await outbox.payment(reference)
        if payment is None:
            return error_response(404, "not_found", f"no payment {reference!r}")
        view = {k: v for k, v in dataclasses.asdict(payment).items() if k != "dossier"}
        return Response(orjson.dumps(view), media_type="application/json")

    return router


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # refused as "invalid" and recorded by the callback handler


def _paygov(status: int, code: str, message: str) -> Response:
    return Response(orjson.dumps({"MaLoi": code, "MoTaLoi": message}), status, media_type="application/json")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
