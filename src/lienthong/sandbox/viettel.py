"""Sandbox Viettel S-Invoice: login, createInvoice and searchInvoiceByTransactionUuid, answering as the
real service does as far as public clients show (docs/contracts.md §3).

- ``POST /auth/login`` (JSON) answers ``{access_token, token_type, expires_in}``.
- The token is read from the cookie ``access_token``, the ``Authorization: Bearer`` header, or either
  (``token_as``); a request without it in an accepted place answers 401, as Spring Security does. An
  expired token answers HTTP 500 ``{"message": "GENERAL", "error": "Internal Server Error"}``.
- ``createInvoice/{supplierTaxCode}`` takes JSON; it checks the sections, ``invoiceIssuedDate`` (epoch ms,
  whole seconds) and that the lines add up. A ``transactionUuid`` seen before answers HTTP 400
  ``TRANSACTION_UUID_INVALID``, never a second invoice.
- ``searchInvoiceByTransactionUuid`` takes a form-encoded body only; a JSON body is refused as Spring
  refuses a missing ``@RequestParam`` (400, Spring's error body). Nothing issued answers HTTP 400
  ``NOT_FOUND_DATA``.
- Errors are ``{"code", "message", "data"}`` with an HTTP 4xx; the code for invalid data (``INVALID_DATA``)
  is our assumption.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from lienthong.adapters.einvoice.viettel import API, TokenAs
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
UNPAID, PAID = "Chưa thanh toán", "Đã thanh toán"


class ViettelSandbox(Peer):
    def __init__(
        self,
        *,
        username: str = "3300000000-h56",
        password: str = "sandbox-viettel-pass",  # noqa: S107 (a simulator's own test credential)
        supplier_tax_code: str = "3300000000",
        token_as: TokenAs = "both",  # noqa: S107 (how the token travels, not a secret)
        token_ttl_s: float = 3600.0,
        faults: FaultPlan | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(faults)
        self.username, self.password, self.supplier_tax_code = username, password, supplier_tax_code
        self.token_as = token_as
        self.token_ttl_s = token_ttl_s
        self._clock = clock
        self.tokens: dict[str, float] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self._numbers = itertools.count(1)
        self.routes[("POST", "/auth/login")] = self._login
        self.routes[("POST", f"{API}/createInvoice/{supplier_tax_code}")] = self._create
        self.routes[("POST", f"{API}/searchInvoiceByTransactionUuid")] = self._search

    def expire_tokens(self) -> None:
        """Every token issued so far is past its end (the service then answers 500 GENERAL)."""
        self.tokens = dict.fromkeys(self.tokens, self._clock() - 1)

    def revoke_tokens(self) -> None:
        """Forget every token (the service then answers 401)."""
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

    def _refusal(self, request: Request) -> Answer | None:
        """None when the request carries a live token where ``token_as`` accepts it."""
        token = self._token(request.headers)
        if token is None:
            return Answer.json(
                {
                    "error": "unauthorized",
                    "error_description": "Full authentication is required to access this resource",
                },
                401,
            )
        expires = self.tokens.get(token)
        if expires is None:
            return Answer.json({"error": "invalid_token", "error_description": "Invalid access token"}, 401)
        if self._clock() >= expires:
            return _spring_error(500, "Internal Server Error", "GENERAL", request.path)
        return None

    def _token(self, headers: dict[str, str]) -> str | None:
        if self.token_as in ("cookie", "both"):
            for part in headers.get("cookie", "").split(";"):
                name, _, value = part.strip().partition("=")
                if name == "access_token" and value:
                    return value
        if self.token_as in ("bearer", "both"):
            scheme, _, value = headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and value:
                return value
        return None

    async def _create(self, request: Request) -> Answer:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        if not request.headers.get("content-type", "").startswith("application/json"):
            kind = request.headers.get("content-type", "")
            return _spring_error(
                415, "Unsupported Media Type", f"Content type {kind!r} not supported", request.path
            )
        body = _json(request.body)
        problem = _check(body)
        if problem:
            return _error("INVALID_DATA", problem)
        info = body["generalInvoiceInfo"]
        uuid = info["transactionUuid"]
        if uuid in self.invoices:
            return _error("TRANSACTION_UUID_INVALID", "Transaction Uuid đã được lập hóa đơn")
        number = f"{info['invoiceSeries']}{next(self._numbers):07d}"
        invoice = {
            "invoiceNo": number,
            "transactionID": secrets.token_hex(8),
            "reservationCode": secrets.token_hex(5).upper(),
            "issueDate": info["invoiceIssuedDate"],
            "status": PAID if info.get("paymentStatus") else UNPAID,
        }
        self.invoices[uuid] = {**invoice, "body": body}
        self.record(Received("createInvoice", uuid, body["buyerInfo"].get("buyerCode", ""), body))
        result = {"supplierTaxCode": self.supplier_tax_code, **invoice}
        for key in ("issueDate", "status"):
            del result[key]
        return Answer.json({"errorCode": None, "description": None, "result": result})

    async def _search(self, request: Request) -> Answer:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        form = _form(request)
        for name in ("supplierTaxCode", "transactionUuid"):
            if not form.get(name):
                message = f"Required String parameter '{name}' is not present"
                return _spring_error(400, "Bad Request", message, request.path)
        if form["supplierTaxCode"] != self.supplier_tax_code:
            return _error("SUPPLIER_TAX_CODE_INVALID", "Mã số thuế không hợp lệ")
        found = self.invoices.get(form["transactionUuid"])
        if found is None:
            return _error("NOT_FOUND_DATA", "Không tìm thấy dữ liệu")
        row = {k: v for k, v in found.items() if k != "body"}
        return Answer.json({"errorCode": None, "description": None, "result": [row]})


def _error(code: str, text: str, status: int = 400) -> Answer:
    return Answer.json({"code": status, "message": code, "data": text}, status)


def _spring_error(status: int, error: str, message: str, path: str) -> Answer:
    """Spring Boot's default error body."""
    now_ms = int(time.time() * 1000)
    body = {"timestamp": now_ms, "status": status, "error": error, "message": message, "path": path}
    return Answer.json(body, status)


def _form(request: Request) -> dict[str, str]:
    """The form-encoded parameters; a body of another content type gives none, as in Spring."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    try:
        pairs = parse_qs(request.body.decode(), strict_parsing=False)
    except UnicodeDecodeError:
        return {}
    return {name: values[0] for name, values in pairs.items()}


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
    issued = info.get("invoiceIssuedDate")
    if not isinstance(issued, int) or isinstance(issued, bool) or issued <= 0 or issued % 1000:
        return f"invoiceIssuedDate must be epoch milliseconds in whole seconds, got {issued!r}"
    if not body["buyerInfo"].get("buyerName"):
        return "buyerInfo.buyerName is required"
    lines = sum(item.get("itemTotalAmountWithoutTax", 0) for item in body["itemInfo"])
    if not body["itemInfo"] or lines != body["summarizeInfo"].get("totalAmountWithTax"):
        return "itemInfo does not add up to summarizeInfo.totalAmountWithTax"
    return None
