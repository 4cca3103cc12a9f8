"""Viettel S-Invoice adapter (REST): log in for a Bearer token, createInvoice, search by transactionUuid.

The token is cached until shortly before it expires and fetched again once when the service answers 401.
Never issue twice: the body's ``transactionUuid`` is derived from the payment (bundled
``einvoice_viettel`` mapping), and any attempt after the first searches for it before creating; a
duplicate answer is searched the same way. The paths and reply fields follow Viettel's published API;
the error codes are (assumed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from lienthong.adapters.base import Receipt, json_body, map_transport_errors, raise_for_status
from lienthong.adapters.einvoice import announce
from lienthong.adapters.http import HttpPeer
from lienthong.bus.emit import EventSink
from lienthong.bus.store import ClaimedDelivery
from lienthong.errors import PermanentError

API = "/services/einvoiceapplication/api/InvoiceAPI/InvoiceWS"


@dataclass(frozen=True)
class ViettelAccount:
    username: str
    password: str
    supplier_tax_code: str
    login_path: str = "/auth/login"
    duplicate_codes: frozenset[str] = frozenset({"DUPLICATE_TRANSACTION_UUID"})  # (assumed)


@dataclass(frozen=True)
class ViettelInvoice:
    transaction_uuid: str
    invoice_no: str
    template_code: str
    series: str


class _Expired(Exception):
    pass


class ViettelInvoiceAdapter:
    operations = ("issue",)

    def __init__(
        self,
        name: str,
        peer: HttpPeer,
        account: ViettelAccount,
        *,
        events: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin_s: float = 60.0,
    ) -> None:
        self.name = name
        self._peer = peer
        self._account = account
        self._events = events
        self._clock = clock
        self._margin = refresh_margin_s
        self._login = peer.endpoint(account.login_path)
        tax = quote(account.supplier_tax_code)
        self._create = peer.endpoint(f"{API}/createInvoice/{tax}")
        self._search = peer.endpoint(f"{API}/searchInvoiceByTransactionUuid")
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()
        self.logins = 0

    async def deliver(self, delivery: ClaimedDelivery, body: dict[str, Any]) -> Receipt:
        if delivery.operation != "issue":
            raise PermanentError(
                f"unknown operation {delivery.operation!r}",
                destination=self.name,
                operation=delivery.operation,
            )
        invoice = await self.issue(body, retrying=delivery.attempts > 0)
        receipt = {
            "provider": "viettel",
            "fkey": invoice.transaction_uuid,
            "pattern": invoice.template_code,
            "serial": invoice.series,
            "number": invoice.invoice_no,
        }
        await announce(self._events, self.name, delivery, receipt)
        return Receipt(http_status=200)

    async def issue(self, body: dict[str, Any], *, retrying: bool) -> ViettelInvoice:
        info = body.get("generalInvoiceInfo") or {}
        uuid = str(info.get("transactionUuid") or "")
        if not uuid:
            raise PermanentError(
                "the mapped invoice has no transactionUuid", destination=self.name, operation="createInvoice"
            )
        with map_transport_errors(self.name, "createInvoice"):
            found = await self.find(uuid) if retrying else None
            if found is not None:
                return found
            answer = await self._authorized(self._create, orjson.dumps(body), "createInvoice")
            code = str(answer.get("errorCode") or "")
            if code in self._account.duplicate_codes:
                found = await self.find(uuid)
                if found is not None:
                    return found
            if code:
                raise PermanentError(
                    f"Viettel refused createInvoice: {answer.get('description', '')}".rstrip(": "),
                    destination=self.name, operation="createInvoice", status=200, remote_code=code,
                )  # fmt: skip
            result = answer.get("result") or {}
            return ViettelInvoice(
                uuid,
                str(result.get("invoiceNo", "")),
                str(info.get("templateCode", "")),
                str(info.get("invoiceSeries", "")),
            )

    async def find(self, transaction_uuid: str) -> ViettelInvoice | None:
        """The invoice issued under ``transaction_uuid``, or None."""
        body = orjson.dumps(
            {"supplierTaxCode": self._account.supplier_tax_code, "transactionUuid": transaction_uuid}
        )
        answer = await self._authorized(self._search, body, "searchInvoiceByTransactionUuid")
        results = answer.get("result") or []
        if answer.get("errorCode") or not results:
            return None
        first = results[0]
        return ViettelInvoice(
            transaction_uuid,
            str(first.get("invoiceNo", "")),
            str(first.get("templateCode", "")),
            str(first.get("invoiceSeries", "")),
        )

    async def aclose(self) -> None:
        await self._peer.aclose()

    async def _authorized(self, endpoint: Any, body: bytes, operation: str) -> dict[str, Any]:
        for _ in range(2):
            token = await self._current_token()
            headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
            response = await endpoint.post(body, headers)
            if response.status_code == 401:
                await self._forget(token)  # expired or revoked: log in again, once
                continue
            raise_for_status(response, self.name, operation)
            return json_body(response, self.name, operation)
        raise PermanentError(
            "Viettel refused a fresh token", destination=self.name, operation=operation, status=401
        )

    async def _current_token(self) -> str:
        async with self._lock:
            if self._token is None or self._clock() >= self._token[1]:
                self._token = await self._log_in()
            return self._token[0]

    async def _forget(self, token: str) -> None:
        async with self._lock:
            if self._token is not None and self._token[0] == token:
                self._token = None

    async def _log_in(self) -> tuple[str, float]:
        self.logins += 1
        body = orjson.dumps({"username": self._account.username, "password": self._account.password})
        response = await self._login.post(body, {"content-type": "application/json"})
        raise_for_status(response, self.name, "login")
        answer = json_body(response, self.name, "login")
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise PermanentError(
                "Viettel login gave no access_token", destination=self.name, operation="login"
            )
        lifetime = float(answer.get("expires_in") or 300)
        return token, self._clock() + max(0.0, lifetime - self._margin)
