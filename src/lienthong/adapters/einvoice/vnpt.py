"""VNPT e-invoice adapter: publish e-receipts with ImportAndPublishInv, look up by Fkey, cancel.

The receipt body is the tax authority's invoice layout, as the e-receipt mapping writes it (``HDon``),
wrapped for VNPT as ``<DSHDon><HDon><Fkey/>…</HDon></DSHDon>`` and sent in ``xmlInvData`` (CDATA, so any
markup inside stays data). Results are strings: ``OK:pattern;serial-fkey_no`` or ``ERR:n``.

Never issue twice: the Fkey is derived from the payment (channel and transaction id), so every attempt for
one payment carries the same Fkey, and ``ERR:13`` (duplicate Fkey) means an earlier attempt already
published it: the adapter looks it up and treats it as success.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import zeep
from lxml import etree
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from lienthong.adapters.base import Receipt
from lienthong.adapters.einvoice import announce
from lienthong.adapters.soap import SAFE, map_soap_errors
from lienthong.bus.emit import EventSink
from lienthong.bus.store import ClaimedDelivery
from lienthong.errors import PermanentError, RetryableError
from lienthong.mappings.xmlout import to_xml

BINDING = "{http://tempuri.org/}PublishServiceSoap"
_OK = re.compile(r"^OK:(?P<pattern>[^;]*);(?P<serial>[^-]*)-(?P<rest>.*)$")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
# ERR:n as VNPT documents them (DESIGN §4), and whether trying again can help.
ERRORS: dict[str, tuple[str, bool]] = {
    "1": ("account or password refused", False),
    "3": ("the invoice XML is not valid", False),
    "5": ("the invoice could not be published", True),
    "6": ("no invoice with this Fkey", False),
    "7": ("user name does not match the account", False),
    "8": ("the invoice was replaced", False),
    "10": ("too many invoices in one call", False),
    "13": ("an invoice with this Fkey exists", False),
    "20": ("pattern and serial do not match", False),
}


@dataclass(frozen=True)
class Published:
    pattern: str
    serial: str
    fkey: str
    number: str


@dataclass(frozen=True)
class VnptFailure:
    code: str

    @property
    def meaning(self) -> str:
        return ERRORS.get(self.code, ("unknown error", False))[0]


def parse_result(text: str | None) -> Published | VnptFailure:
    """``OK:pattern;serial-fkey_no`` → Published; ``ERR:n`` → VnptFailure. ValueError for anything else."""
    text = (text or "").strip()
    if text.startswith("ERR:"):
        return VnptFailure(text[4:].split(":", 1)[0].strip())
    match = _OK.match(text)
    if match is None:
        raise ValueError(f"not a VNPT result: {text[:80]!r}")
    fkey, _, number = match.group("rest").rpartition("_")
    if not fkey:
        raise ValueError(f"not a VNPT result: {text[:80]!r}")
    return Published(match.group("pattern"), match.group("serial"), fkey, number)


def fkey_for(delivery: ClaimedDelivery) -> str:
    """The same for every attempt at one payment's receipt: channel and transaction id, else the event."""
    payment = delivery.event.dossier.get("payment")
    if isinstance(payment, dict) and payment.get("transaction_id"):
        raw = f"{payment.get('channel') or 'pay'}-{payment['transaction_id']}"
    else:
        raw = delivery.event.event_id
    return re.sub(r"[^A-Za-z0-9_.-]", "-", raw)


@dataclass(frozen=True)
class VnptAccount:
    account: str
    ac_password: str
    username: str
    password: str
    pattern: str
    serial: str


class VnptInvoiceAdapter:
    operations = ("issue", "cancel")

    def __init__(
        self,
        name: str,
        transport: AsyncTransport,
        *,
        address: str,
        account: VnptAccount,
        timeout_s: float = 30.0,
        events: EventSink | None = None,
    ) -> None:
        self.name = name
        self._transport = transport
        wsdl = str(resources.files("lienthong.adapters") / "wsdl" / "vnpt_publish.wsdl")
        client = zeep.AsyncClient(wsdl, transport=transport, settings=SAFE)
        self._service = AsyncServiceProxy(client, client.wsdl.bindings[BINDING], address=address)
        self._account = account
        self._timeout_s = timeout_s
        self._events = events

    async def deliver(self, delivery: ClaimedDelivery, body: dict[str, Any]) -> Receipt:
        op = delivery.operation
        fkey = fkey_for(delivery)
        if op == "issue":
            published = await self.issue(fkey, body)
            receipt = {
                "provider": "vnpt",
                "fkey": published.fkey,
                "pattern": published.pattern,
                "serial": published.serial,
                "number": published.number,
            }
            await announce(self._events, self.name, delivery, receipt)
        elif op == "cancel":
            await self.cancel(fkey)
        else:
            raise PermanentError(f"unknown operation {op!r}", destination=self.name, operation=op)
        return Receipt(http_status=200)

    async def issue(self, fkey: str, invoice: dict[str, Any]) -> Published:
        """Publish the receipt ``invoice`` (an HDon document) under ``fkey``; once, however often called."""
        data = etree.tostring(_wrapped(fkey, invoice), encoding="unicode")
        a = self._account
        result = await self._call(
            "ImportAndPublishInv",
            Account=a.account, ACpass=a.ac_password, xmlInvData=etree.CDATA(data), username=a.username,
            password=a.password, pattern=a.pattern, serial=a.serial, convert=0,
        )  # fmt: skip
        outcome = self._parse(result, "ImportAndPublishInv")
        if isinstance(outcome, VnptFailure) and outcome.code == "13":
            found = await self.find(fkey)  # published by an earlier attempt: the same receipt, not a new one
            if found is not None:
                return found
        return self._published(outcome, "ImportAndPublishInv")

    async def find(self, fkey: str) -> Published | None:
        a = self._account
        text = await self._call(
            "GetInvoiceByFkey",
            Account=a.account,
            ACpass=a.ac_password,
            fkey=fkey,
            username=a.username,
            password=a.password,
        )
        if (text or "").startswith("ERR:"):
            failure = parse_result(text)
            if isinstance(failure, VnptFailure) and failure.code == "6":
                return None
            raise self._error(failure, "GetInvoiceByFkey")  # type: ignore[arg-type]
        try:
            root = etree.fromstring((text or "").encode(), _PARSER)
            fields = {etree.QName(c).localname: (c.text or "") for c in root}
            return Published(fields["Pattern"], fields["Serial"], fields["Fkey"], fields["No"])
        except (etree.XMLSyntaxError, KeyError) as exc:
            raise RetryableError(
                f"GetInvoiceByFkey answered something unreadable: {text!r:.80}",
                destination=self.name,
                operation="GetInvoiceByFkey",
            ) from exc

    async def cancel(self, fkey: str) -> None:
        a = self._account
        text = await self._call(
            "cancelInv",
            Account=a.account,
            ACpass=a.ac_password,
            fkey=fkey,
            userName=a.username,
            userPass=a.password,
        )
        if not (text or "").startswith("OK"):
            outcome = parse_result(text)
            assert isinstance(outcome, VnptFailure)
            raise self._error(outcome, "cancelInv")

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def _call(self, operation: str, **params: Any) -> str | None:
        """One SOAP call; transport and SOAP failures become Retryable/PermanentError here."""
        name = self.name
        with map_soap_errors(
            lambda message, _code: RetryableError(message, destination=name, operation=operation),
            lambda message, code: PermanentError(
                message, destination=name, operation=operation, remote_code=code
            ),
        ):
            async with asyncio.timeout(self._timeout_s):
                result: str | None = await getattr(self._service, operation)(**params)
                return result

    def _parse(self, text: str | None, operation: str) -> Published | VnptFailure:
        try:
            return parse_result(text)
        except ValueError as exc:
            raise RetryableError(str(exc), destination=self.name, operation=operation) from exc

    def _published(self, outcome: Published | VnptFailure, operation: str) -> Published:
        if isinstance(outcome, VnptFailure):
            raise self._error(outcome, operation)
        return outcome

    def _error(self, failure: VnptFailure, operation: str) -> RetryableError | PermanentError:
        message = f"VNPT ERR:{failure.code}: {failure.meaning}"
        if ERRORS.get(failure.code, ("", False))[1]:
            return RetryableError(message, destination=self.name, operation=operation)
        return PermanentError(
            message, destination=self.name, operation=operation, remote_code=f"ERR:{failure.code}"
        )


def _wrapped(fkey: str, invoice: dict[str, Any]) -> etree._Element:
    hdon = etree.fromstring(to_xml("HDon", invoice), _PARSER)
    key = etree.Element("Fkey")
    key.text = fkey
    hdon.insert(0, key)
    batch = etree.Element("DSHDon")
    batch.append(hdon)
    return batch
