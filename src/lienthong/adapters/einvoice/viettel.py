"""Viettel S-Invoice adapter (REST): log in, createInvoice, searchInvoiceByTransactionUuid.

What the wire looks like (docs/contracts.md §3, each fact's standing there):

- ``POST /auth/login`` with JSON ``{username, password}`` answers ``{access_token, expires_in}`` (seconds).
  The token is cached until ``refresh_margin_s`` before it ends.
- The token travels as the cookie ``access_token`` (Odoo's and V6's clients) or as ``Authorization:
  Bearer`` (another client): ``token_as`` is ``cookie``, ``bearer`` or ``both``. **Default ``both``**:
  each is seen in a public client on these endpoints, nobody has seen a server refuse the other one next
  to the one it reads, and sending both works whichever the tenant's gateway reads.
- An expired token can answer HTTP 500 ``{"message": "GENERAL", "error": "Internal Server Error"}``
  rather than 401: on either, the adapter logs in again once and repeats the call once.
- ``createInvoice/{supplierTaxCode}`` takes JSON and answers ``{errorCode: null, description: null,
  result: {supplierTaxCode, invoiceNo, transactionID, reservationCode}}``.
- ``searchInvoiceByTransactionUuid`` takes a **form-encoded** body (``supplierTaxCode``,
  ``transactionUuid``) and answers ``{result: [{invoiceNo, status, reservationCode, transactionID,
  issueDate}]}``; ``status`` is the *payment* status as text, not whether the invoice exists.
- Errors are HTTP 4xx/5xx with ``{"code": 400, "message": "<CODE>", "data": "<text>"}``.
  ``NOT_FOUND_DATA`` (``not_found_codes``) on a search means nothing was issued: issue it now.
  ``TRANSACTION_UUID_INVALID`` (``duplicate_codes``) on a create means it was: search and take it.

Never issue twice: the body's ``transactionUuid`` is derived from the payment (bundled
``einvoice_viettel`` mapping); every delivery searches before creating, and a search listing several
invoices is "unknown". An answer that names
no ``invoiceNo`` is "unknown", retried (the next attempt searches first), never "delivered".
``generalInvoiceInfo.invoiceIssuedDate`` is the moment of the attempt in epoch milliseconds, whole seconds
(× 1000), unless the mapping gave one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

import orjson

from lienthong.adapters.base import Receipt, map_transport_errors, raise_for_status
from lienthong.adapters.credentials import CredentialCache
from lienthong.adapters.einvoice import announce
from lienthong.adapters.failures import retryable_status
from lienthong.adapters.http import Answer, Endpoint, HttpPeer
from lienthong.bus.emit import EventSink
from lienthong.errors import PermanentError, RetryableError, TranslationError
from lienthong.model import Message

API = "/services/einvoiceapplication/api/InvoiceAPI/InvoiceWS"
TokenAs = Literal["cookie", "bearer", "both"]
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class ViettelAccount:
    """Credentials and the codes Viettel answers with; the codes' defaults are the ones seen in public
    clients (docs/contracts.md §3), configurable because Viettel publishes no list."""

    username: str
    password: str
    supplier_tax_code: str
    login_path: str = "/auth/login"
    token_as: TokenAs = "both"  # noqa: S105 (how the token travels, not a secret)
    duplicate_codes: frozenset[str] = frozenset({"TRANSACTION_UUID_INVALID"})
    not_found_codes: frozenset[str] = frozenset({"NOT_FOUND_DATA"})
    expired_token_codes: frozenset[str] = frozenset({"GENERAL"})  # with HTTP 500


@dataclass(frozen=True)
class ViettelInvoice:
    transaction_uuid: str
    invoice_no: str
    template_code: str
    series: str
    reservation_code: str = ""


@dataclass(frozen=True)
class ViettelFound:
    """One row of a search answer. ``status`` is Viettel's payment status text ("Chưa thanh toán")."""

    invoice_no: str
    reservation_code: str
    transaction_id: str
    issue_date: int | None
    status: str


@dataclass(frozen=True)
class _Answer:
    status: int
    body: dict[str, Any]

    @property
    def code(self) -> str:
        """The error code: ``message`` of an error answer, or ``errorCode`` of a 2xx one."""
        if 200 <= self.status < 300:
            return str(self.body.get("errorCode") or "")
        return str(self.body.get("message") or self.body.get("errorCode") or "")

    @property
    def text(self) -> str:
        return str(self.body.get("data") or self.body.get("description") or self.body.get("error") or "")


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
        wall_clock: Callable[[], float] = time.time,
        refresh_margin_s: float = 60.0,
    ) -> None:
        self.name = name
        self._peer = peer
        self._account = account
        self._events = events
        self._clock = clock
        self._wall_clock = wall_clock
        self._margin = refresh_margin_s
        self._login = peer.endpoint(account.login_path)
        tax = quote(account.supplier_tax_code)
        self._create = peer.endpoint(f"{API}/createInvoice/{tax}")
        self._search = peer.endpoint(f"{API}/searchInvoiceByTransactionUuid")
        self._token = CredentialCache(self._log_in, clock=clock)

    async def deliver(self, message: Message, body: dict[str, Any]) -> Receipt:
        if message.operation != "issue":
            raise PermanentError(
                f"unknown operation {message.operation!r}",
                destination=self.name,
                operation=message.operation,
            )
        # Search before creating on every delivery, the first too: a delivery whose outcome was lost (a
        # kill -9 between Viettel's answer and the commit, a lease that lapsed) comes back with no attempt
        # counted, and Viettel's refusal of a second create under one transactionUuid is assumed
        # (docs/contracts.md §3). One more call per receipt (found in review).
        invoice = await self.issue(body, retrying=True)
        receipt = {
            "provider": "viettel",
            "fkey": invoice.transaction_uuid,
            "pattern": invoice.template_code,
            "serial": invoice.series,
            "number": invoice.invoice_no,
        }
        await announce(self._events, self.name, message, receipt)
        return Receipt(http_status=200)

    async def issue(self, body: dict[str, Any], *, retrying: bool) -> ViettelInvoice:
        """Create the invoice of ``body``, or take the one an earlier attempt created."""
        info = body.get("generalInvoiceInfo") or {}
        uuid = str(info.get("transactionUuid") or "")
        if not uuid:
            raise PermanentError(
                "the mapped invoice has no transactionUuid", destination=self.name, operation="createInvoice"
            )
        with map_transport_errors(self.name, "createInvoice"):
            found = await self.find(uuid) if retrying else None
            if found is None:
                found = await self._create_or_find(body, uuid)
        return ViettelInvoice(
            uuid,
            found.invoice_no,
            str(info.get("templateCode", "")),
            str(info.get("invoiceSeries", "")),
            found.reservation_code,
        )

    async def find(self, transaction_uuid: str) -> ViettelFound | None:
        """The invoice issued under ``transaction_uuid``; None when Viettel says nothing was issued."""
        operation = "searchInvoiceByTransactionUuid"
        form = {"supplierTaxCode": self._account.supplier_tax_code, "transactionUuid": transaction_uuid}
        with map_transport_errors(self.name, operation):
            answer = await self._authorized(self._search, urlencode(form).encode(), FORM, operation)
        if answer.code in self._account.not_found_codes:
            return None
        self._refuse_unless_ok(answer, operation)
        results = answer.body.get("result")
        if not results:  # an empty list: nothing under this uuid (creating again is refused as duplicate)
            return None
        if not isinstance(results, list) or not all(isinstance(row, dict) for row in results):
            raise self._unknown(operation, f"a search answer without a list of invoices: {results!r:.120}")
        # Rows name no transactionUuid to check: several invoices under one leave ours unknown (as VNPT's
        # look-up with several numbers), never the first taken for it (found in review).
        numbers = {str(row.get("invoiceNo") or "").strip() for row in results}
        if len(numbers) > 1:
            listed = ", ".join(sorted(numbers)[:5])
            raise self._unknown(
                operation, f"the search lists {len(numbers)} invoices ({listed}) under one uuid"
            )
        return self._found(results[0], operation)

    async def probe(self) -> str:
        """Log in (``check --connect``): the account works, and no invoice is sent."""
        with map_transport_errors(self.name, "login"):
            await self._token.get()
        return "Viettel login ok (a token was given)"

    @property
    def logins(self) -> int:
        """How many times this adapter has logged in."""
        return self._token.fetches

    async def aclose(self) -> None:
        await self._peer.aclose()

    async def _create_or_find(self, body: dict[str, Any], uuid: str) -> ViettelFound:
        payload = orjson.dumps(_with_issued_date(body, self._wall_clock(), self.name))
        answer = await self._authorized(self._create, payload, JSON, "createInvoice")
        if answer.code in self._account.duplicate_codes:
            found = await self.find(uuid)
            if found is None:
                raise self._unknown("createInvoice", f"{answer.code} for {uuid}, yet a search finds nothing")
            return found
        self._refuse_unless_ok(answer, "createInvoice")
        result = answer.body.get("result")
        if not isinstance(result, dict):
            raise self._unknown("createInvoice", "the answer has no result")
        return self._found(result, "createInvoice")

    def _found(self, row: dict[str, Any], operation: str) -> ViettelFound:
        number = row.get("invoiceNo")
        if not isinstance(number, str) or not number.strip():
            raise self._unknown(operation, "the answer names no invoiceNo")
        issued = row.get("issueDate")
        return ViettelFound(
            number.strip(),
            str(row.get("reservationCode") or ""),
            str(row.get("transactionID") or ""),
            issued if isinstance(issued, int) else None,
            str(row.get("status") or ""),
        )

    def _unknown(self, operation: str, why: str) -> RetryableError:
        """Whether an invoice exists is not known: retry; the next attempt searches before creating."""
        return RetryableError(
            f"Viettel's answer leaves the invoice unknown: {why}", destination=self.name, operation=operation
        )

    def _refuse_unless_ok(self, answer: _Answer, operation: str) -> None:
        if 200 <= answer.status < 300 and not answer.code:
            return
        message = f"Viettel refused {operation}: {answer.code or f'http {answer.status}'}"
        message += f" ({answer.text})" if answer.text else ""
        raise PermanentError(
            message, destination=self.name, operation=operation, status=answer.status,
            remote_code=answer.code or None,
        )  # fmt: skip

    async def _authorized(self, endpoint: Endpoint, body: bytes, kind: str, operation: str) -> _Answer:
        """POST with the current token; a 401, or a 500 naming an expired token, logs in again once."""

        async def post(token: str) -> _Answer:
            response = await endpoint.post(body, {"content-type": kind, **self._token_headers(token)})
            return self._read(response, operation)

        answer = await self._token.call(post, refused=self._token_refused)
        if not self._token_refused(answer):
            return answer
        if answer.status >= 500:
            raise RetryableError(
                f"Viettel answered {answer.code} with HTTP {answer.status} after a fresh login",
                destination=self.name, operation=operation, status=answer.status,
            )  # fmt: skip
        raise PermanentError(
            "Viettel refused a fresh token", destination=self.name, operation=operation, status=401
        )

    def _token_refused(self, answer: _Answer) -> bool:
        return answer.status == 401 or (
            answer.status == 500 and answer.code in self._account.expired_token_codes
        )

    def _token_headers(self, token: str) -> dict[str, str]:
        how = self._account.token_as
        headers = {}
        if how in ("cookie", "both"):
            headers["cookie"] = f"access_token={token}"
        if how in ("bearer", "both"):
            headers["authorization"] = f"Bearer {token}"
        return headers

    def _read(self, response: Answer, operation: str) -> _Answer:
        """The answer's JSON object; an unreadable one is classified by its HTTP status alone."""
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            answer = _Answer(response.status_code, body)
            if retryable_status(answer.status) and not self._token_refused(answer):
                raise_for_status(response, self.name, operation)  # with its Retry-After
            return answer
        raise_for_status(response, self.name, operation)  # a 4xx/5xx page that is not Viettel's JSON
        kind = response.headers.get("content-type", "no content type")
        raise RetryableError(
            f"answer is not a JSON object ({kind}): {response.text[:120]!r}",
            destination=self.name, operation=operation, status=response.status_code,
        )  # fmt: skip

    async def _log_in(self) -> tuple[str, float]:
        body = orjson.dumps({"username": self._account.username, "password": self._account.password})
        response = await self._login.post(body, {"content-type": JSON})
        raise_for_status(response, self.name, "login")
        answer = self._read(response, "login")
        token = answer.body.get("access_token")
        if not isinstance(token, str) or not token:
            raise PermanentError(
                "Viettel login gave no access_token", destination=self.name, operation="login"
            )
        lifetime = float(answer.body.get("expires_in") or 300)
        return token, self._clock() + max(0.0, lifetime - self._margin)


def _with_issued_date(body: dict[str, Any], now_s: float, destination: str) -> dict[str, Any]:
    """``body`` with ``generalInvoiceInfo.invoiceIssuedDate`` in epoch ms, whole seconds: the mapping's
    value (epoch ms, or ISO 8601 text with an offset) if it gave one, else ``now_s``."""
    info = dict(body.get("generalInvoiceInfo") or {})
    given = info.get("invoiceIssuedDate")
    if isinstance(given, str) and given:
        seconds = _iso_seconds(given, destination)
    elif isinstance(given, int | float) and not isinstance(given, bool):
        seconds = given / 1000
    else:
        seconds = now_s
    info["invoiceIssuedDate"] = int(seconds) * 1000
    return {**body, "generalInvoiceInfo": info}


def _iso_seconds(text: str, destination: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise TranslationError(
            f"expected epoch ms or ISO 8601 with an offset, got {text!r}",
            field="generalInvoiceInfo.invoiceIssuedDate",
            destination=destination,
            operation="createInvoice",
        )
    return moment.timestamp()
