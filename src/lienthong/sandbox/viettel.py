"""Sandbox Viettel S-Invoice: login, createInvoice and search by transactionUuid, over JSON.

It checks the Bearer token (tokens expire), the supplier tax code in the path, the required sections,
and that the lines add up to the total; a transactionUuid seen before answers the duplicate code, never
a second invoice. Reply shape: ``{errorCode, description, result}``.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson

from lienthong.adapters.einvoice.viettel import API
from lienthong.sandbox.base import Answer, FaultPlan, Peer, Received, Request

_SECTIONS = (
    "generalInvoiceInfo",
    "buyerInfo",
    "sellerInfo",
    "payments",
    "itemInfo",
    "summarizeInfo",
    "taxBreakdowns",
)


class ViettelSandbox(Peer):
    def __init__(
        self,
        *,
        username: str = "3300000000-h56",
        password: str = "sandbox-viettel-pass",  # noqa: S107 (a simulator's own test credential)
        supplier_tax_code: str = "3300000000",
        token_ttl_s: float = 3600.0,
        faults: FaultPlan | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(faults)
        self.username, self.password, self.supplier_tax_code = username, password, supplier_tax_code
        self.token_ttl_s = token_ttl_s
        self._clock = clock
        self.tokens: dict[str, float] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self._numbers = itertools.count(1)
        self.routes[("POST", "/auth/login")] = self._login
        self.routes[("POST", f"{API}/createInvoice/{supplier_tax_code}")] = self._create
        self.routes[("POST", f"{API}/searchInvoiceByTransactionUuid")] = self._search

    def expire_tokens(self) -> None:
        self.tokens.clear()

    async def _login(self, request: Request) -> Answer:
        body = _json(request.body)
        if not isinstance(body, dict) or (body.get("username"), body.get("password")) != (
            self.username,
            self.password,
        ):
            return Answer.json({"error": "invalid_grant", "error_description": "Bad credentials"}, 400)
        token = secrets.token_hex(16)
        self.tokens[token] = self._clock() + self.token_ttl_s
        return Answer.json(
            {"access_token": token, "token_type": "bearer", "expires_in": int(self.token_ttl_s)}
        )

    def _authorized(self, request: Request) -> bool:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        expires = self.tokens.get(token)
        return expires is not None and self._clock() < expires

    async def _create(self, request: Request) -> Answer:
        if not self._authorized(request):
            return Answer.json({"error": "invalid_token"}, 401)
        body = _json(request.body)
        problem = _check(body)
        if problem:
            return Answer.json({"errorCode": "INVALID_DATA", "description": problem, "result": None})
        info = body["generalInvoiceInfo"]
        uuid = info["transactionUuid"]
        if uuid in self.invoices:
            return Answer.json(
                {
                    "errorCode": "DUPLICATE_TRANSACTION_UUID",
                    "description": "transactionUuid đã tồn tại",
                    "result": None,
                }
            )
        number = f"{info['invoiceSeries']}{next(self._numbers):07d}"
        self.invoices[uuid] = {
            "invoiceNo": number,
            "templateCode": info["templateCode"],
            "invoiceSeries": info["invoiceSeries"],
            "body": body,
        }
        self.record(Received("createInvoice", uuid, body["buyerInfo"].get("buyerCode", ""), body))
        return Answer.json(
            {
                "errorCode": None,
                "description": None,
                "result": {
                    "supplierTaxCode": self.supplier_tax_code,
                    "invoiceNo": number,
                    "transactionID": uuid,
                },
            }
        )

    async def _search(self, request: Request) -> Answer:
        if not self._authorized(request):
            return Answer.json({"error": "invalid_token"}, 401)
        body = _json(request.body)
        uuid = body.get("transactionUuid") if isinstance(body, dict) else None
        found = self.invoices.get(str(uuid))
        result = [{k: v for k, v in found.items() if k != "body"}] if found else []
        return Answer.json({"errorCode": None, "description": None, "result": result})


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _check(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    missing = [s for s in _SECTIONS if s not in body]
    if missing:
        return f"missing sections: {', '.join(missing)}"
    info = body["generalInvoiceInfo"]
    if not all(info.get(k) for k in ("templateCode", "invoiceSeries", "transactionUuid")):
        return "generalInvoiceInfo needs templateCode, invoiceSeries and transactionUuid"
    if not body["buyerInfo"].get("buyerName"):
        return "buyerInfo.buyerName is required"
    lines = sum(item.get("itemTotalAmountWithoutTax", 0) for item in body["itemInfo"])
    if not body["itemInfo"] or lines != body["summarizeInfo"].get("totalAmountWithTax"):
        return "itemInfo does not add up to summarizeInfo.totalAmountWithTax"
    return None
