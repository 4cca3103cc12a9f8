"""VNPT e-invoice adapter: publish e-receipts with ImportAndPublishInv, look them up, cancel them.

VNPT's services are three SOAP services, each tenant hosting its own WSDLs (docs/contracts.md §1):
PublishService (``ImportAndPublishInv``; TT78 tenants also ``GetInvoiceByFkey``), BusinessService
(``cancelInv``) and PortalService (``listInvByCusFkey``). ``VnptServices`` names each one's WSDL (a URL or a
file; the bundled ones by default) and address. The adapter reads which operations each WSDL offers and
looks receipts up with ``GetInvoiceByFkey`` where PublishService has it, else with ``listInvByCusFkey``.

The receipt body is VNPT's TT78 input layout, as the e-receipt mapping writes it (``HDon``), wrapped as
``<DSHDon><HDon><key/>…</HDon></DSHDon>`` (``key`` first) and sent in ``xmlInvData`` (CDATA, so any markup
inside stays data); pattern and serial travel as SOAP parameters. Results are strings:
``OK:pattern;serial-key_no`` or ``ERR:n``.

Never issue twice, never take a receipt on trust: the key is derived from the payment (channel and
transaction id), so every attempt for one payment carries the same key, and ``ERR:13`` (duplicate key)
means an earlier attempt published it. Its number is then looked up, and the look-up is believed only when
it names our key (or, for listInvByCusFkey, our pattern and serial) with a number. Anything else, not
found included, is "unknown": retried, never "delivered", never issued again.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import zeep
from lxml import etree
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport
from zeep.wsdl.bindings.soap import Soap11Binding

from lienthong.adapters.base import Receipt
from lienthong.adapters.einvoice import announce
from lienthong.adapters.failures import Failure
from lienthong.adapters.soap import SAFE, map_soap_errors, safe_xml
from lienthong.bus.emit import EventSink
from lienthong.errors import DeliveryError, PermanentError, RetryableError
from lienthong.mappings.xmlout import to_xml
from lienthong.model import Message
from lienthong.xmlsafe import XmlError

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_PLAIN_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_OK = re.compile(r"^OK:(?P<pattern>[^;]*);(?P<serial>[^-]*)-(?P<rest>.*)$")
# ImportAndPublishInv's ERR:n as VNPT's integration document gives them (docs/contracts.md §1), and
# whether trying again can help. The same number means other things in other operations.
ERRORS: dict[str, tuple[str, bool]] = {
    "1": ("account or password refused, or no right to publish", False),
    "3": ("the invoice XML is not valid", False),
    "5": ("the invoice could not be published", True),
    "6": ("the number range has too few numbers left for this batch", False),
    "7": ("user name or password not valid", False),
    "10": ("too many invoices in one call", False),
    "13": ("an invoice with this key exists", False),
    "20": ("pattern and serial do not match, or are not registered", False),
    "21": ("the invoice number is already used", False),
    "29": ("the signing certificate has expired", False),
    "30": ("the invoice date is earlier than a published one", False),
}
CANCEL_ERRORS: dict[str, tuple[str, bool]] = {
    "1": ("account or password refused", False),
    "2": ("no invoice with this key", False),
    "6": ("no invoice with this key", False),
    "8": ("the invoice was already adjusted or cancelled", False),
    "9": ("the invoice is paid: VNPT cancels it only after UnConfirmPaymentFkey", False),
    "20": ("pattern and serial do not match", False),
}
LOOKUPS = ("GetInvoiceByFkey", "listInvByCusFkey")
_KEY_NAMES = frozenset({"key", "fkey", "ikey"})
_NUMBER_NAMES = frozenset({"no", "invnum", "shdon"})


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


class Unconfirmed(ValueError):
    """A look-up answer that does not confirm the receipt (says why)."""


def parse_result(text: str | None) -> Published | VnptFailure:
    """``OK:pattern;serial-key_no`` → Published; ``ERR:n`` → VnptFailure. ValueError for anything else."""
    text = (text or "").strip()
    if text.startswith("ERR:"):
        return VnptFailure(text[4:].split(":", 1)[0].strip())
    match = _OK.match(text)
    if match is None:
        raise ValueError(f"not a VNPT result: {text[:80]!r}")
    fkey, _, number = match.group("rest").partition(",")[0].rpartition("_")
    if not _digits(number):  # a cash-register receipt: key_no_MCCQT
        fkey, _, number = fkey.rpartition("_")
    if not fkey or not _digits(number):
        raise ValueError(f"not a VNPT result: {text[:80]!r}")
    return Published(match.group("pattern"), match.group("serial"), fkey, number)


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes ``٣`` and ``²``."""
    return text.isascii() and text.isdigit()


def fkey_for(message: Message) -> str:
    """The same for every attempt at one payment's receipt, and different for different payments:
    ``<channel>-<transaction id>`` when that is already plain (letters, digits, ``_.-``), else
    ``<channel>-h<SHA-256 of it>`` (rewriting ``FT26/0001`` as ``FT26-0001`` would give two payments one
    key). Without a payment, the same from the event id."""
    payment = message.event.dossier.get("payment")
    if isinstance(payment, dict) and payment.get("transaction_id"):
        channel, raw = str(payment.get("channel") or "pay"), str(payment["transaction_id"])
    else:
        channel, raw = "event", message.event.event_id
    if _PLAIN_KEY.match(channel) and _PLAIN_KEY.match(raw) and len(channel) + len(raw) < 64:
        return f"{channel}-{raw}"
    digest = hashlib.sha256(f"{channel}\x1f{raw}".encode()).hexdigest()[:32]
    return f"{_PLAIN_KEY_CHARS.sub('-', channel)[:16]}-h{digest}"


@dataclass(frozen=True)
class VnptAccount:
    account: str
    ac_password: str
    username: str
    password: str
    pattern: str
    serial: str
    comtaxcode: str = ""  # the seller's tax code, for GetInvoiceByFkey
    notax: str = "1"  # (assumed) GetInvoiceByFkey's notax; "0" is seen to find drafts only


def bundled_wsdl(service: str) -> str:
    """The path of lienthong's own WSDL of ``service`` (publish, business or portal)."""
    return str(resources.files("lienthong.adapters") / "wsdl" / f"vnpt_{service}.wsdl")


@dataclass(frozen=True)
class VnptServices:
    """Each VNPT service's WSDL (URL or file) and the address its calls go to."""

    publish_address: str
    business_address: str
    portal_address: str
    publish_wsdl: str = bundled_wsdl("publish")
    business_wsdl: str = bundled_wsdl("business")
    portal_wsdl: str = bundled_wsdl("portal")

    @classmethod
    def at(cls, base_url: str, **wsdls: str | None) -> VnptServices:
        """The three services under ``base_url`` at VNPT's paths; ``wsdls`` override the bundled ones."""
        base = base_url.rstrip("/")
        given = {f"{k}_wsdl": v for k, v in wsdls.items() if v}
        paths = ("PublishService.asmx", "BusinessService.asmx", "PortalService.asmx")
        return cls(*(f"{base}/{path}" for path in paths), **given)


class _Service:
    """One SOAP service: its WSDL, loaded on first use, and the operations it offers."""

    def __init__(self, wsdl: str, address: str, transport: AsyncTransport) -> None:
        self.wsdl, self.address = wsdl, address
        self._transport = transport
        self._proxy: AsyncServiceProxy | None = None
        self._loading = threading.Lock()
        self.operations: frozenset[str] = frozenset()

    def load(self) -> AsyncServiceProxy:
        """Read the WSDL once (blocking: a file, or a fetch with the transport's synchronous client)."""
        with self._loading:
            if self._proxy is None:
                client = zeep.AsyncClient(self.wsdl, transport=self._transport, settings=SAFE)
                binding = _soap11_binding(client)
                self.operations = frozenset(binding._operations)
                self._proxy = AsyncServiceProxy(client, binding, address=self.address)
            return self._proxy

    async def proxy(self) -> AsyncServiceProxy:
        """The loaded service; the first call reads the WSDL on a worker thread, later ones do not hop."""
        return self._proxy if self._proxy is not None else await asyncio.to_thread(self.load)


def _soap11_binding(client: zeep.AsyncClient) -> Any:
    for service in client.wsdl.services.values():
        for port in service.ports.values():
            if isinstance(port.binding, Soap11Binding):
                return port.binding
    raise ValueError(f"{client.wsdl.location}: no SOAP 1.1 binding")


class VnptInvoiceAdapter:
    operations = ("issue", "cancel")

    def __init__(
        self,
        name: str,
        transport: AsyncTransport,
        *,
        services: VnptServices,
        account: VnptAccount,
        timeout_s: float = 30.0,
        events: EventSink | None = None,
    ) -> None:
        self.name = name
        self._transport = transport
        self._publish = _Service(services.publish_wsdl, services.publish_address, transport)
        self._business = _Service(services.business_wsdl, services.business_address, transport)
        self._portal = _Service(services.portal_wsdl, services.portal_address, transport)
        self._account = account
        self._timeout_s = timeout_s
        self._events = events

    def missing_operations(self, operations: Iterable[str]) -> list[str]:
        """VNPT operations our ``operations`` (issue, cancel) need and the configured WSDLs lack.

        Loads the WSDLs (blocking). Raises what zeep raises for a WSDL that cannot be read.
        """
        missing: list[str] = []
        for op in operations:
            if op == "issue":
                self._publish.load()
                if "ImportAndPublishInv" not in self._publish.operations:
                    missing.append("ImportAndPublishInv (PublishService)")
                if self._lookup() is None:
                    missing.append("GetInvoiceByFkey (PublishService) or listInvByCusFkey (PortalService)")
            elif op == "cancel":
                self._business.load()
                if "cancelInv" not in self._business.operations:
                    missing.append("cancelInv (BusinessService)")
        return missing

    async def deliver(self, message: Message, body: dict[str, Any]) -> Receipt:
        op = message.operation
        fkey = fkey_for(message)
        if op == "issue":
            published = await self.issue(fkey, body)
            receipt = {
                "provider": "vnpt",
                "fkey": published.fkey,
                "pattern": published.pattern,
                "serial": published.serial,
                "number": published.number,
            }
            await announce(self._events, self.name, message, receipt)
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
            self._publish, "ImportAndPublishInv",
            Account=a.account, ACpass=a.ac_password, xmlInvData=etree.CDATA(data), username=a.username,
            password=a.password, pattern=a.pattern, serial=a.serial, convert=0,
        )  # fmt: skip
        outcome = self._parse(result, "ImportAndPublishInv")
        if isinstance(outcome, VnptFailure):
            if outcome.code == "13":  # published by an earlier attempt: the same receipt, not a new one
                return await self._published_earlier(fkey)
            raise self._error(outcome, "ImportAndPublishInv", ERRORS)
        if outcome.fkey != fkey:
            raise RetryableError(
                f"ImportAndPublishInv answered for key {outcome.fkey!r}, not {fkey!r}",
                destination=self.name,
                operation="ImportAndPublishInv",
            )
        return outcome

    async def find(self, fkey: str) -> Published:
        """The receipt published under ``fkey``. Raises Unconfirmed when the look-up does not confirm it
        (unreadable, another key, no number, not found: VNPT's look-ups cannot tell "not issued" reliably)."""
        with map_soap_errors(self._lookup_error, self._lookup_error):  # a WSDL fetched now fails as a call
            await self._publish.proxy()
            if "GetInvoiceByFkey" not in self._publish.operations:
                await self._portal.proxy()
        lookup = self._lookup()  # both WSDLs it may read are loaded: no blocking here
        a = self._account
        if lookup == "GetInvoiceByFkey":
            text = await self._call(
                self._publish, "GetInvoiceByFkey",
                username=a.username, password=a.password, comtaxcode=a.comtaxcode, pattern=a.pattern,
                serial=a.serial, notax=a.notax, fkey=fkey,
            )  # fmt: skip
            return _confirmed_by_key(text, fkey, a)
        if lookup == "listInvByCusFkey":
            text = await self._call(
                self._portal, "listInvByCusFkey",
                key=fkey, fromDate="", toDate="", userName=a.username, userPass=a.password,
            )  # fmt: skip
            return _confirmed_by_listing(text, fkey, a)
        raise PermanentError(
            "the configured WSDLs offer no look-up: GetInvoiceByFkey (PublishService) or"
            " listInvByCusFkey (PortalService)",
            destination=self.name,
            operation="issue",
        )

    def _lookup_error(self, failure: Failure) -> DeliveryError:
        return failure.error(self.name, "issue")

    async def cancel(self, fkey: str) -> None:
        a = self._account
        text = await self._call(
            self._business, "cancelInv",
            Account=a.account, ACpass=a.ac_password, fkey=fkey, userName=a.username, userPass=a.password,
        )  # fmt: skip
        if not (text or "").startswith("OK"):
            outcome = self._parse(text, "cancelInv")
            if isinstance(outcome, VnptFailure):
                raise self._error(outcome, "cancelInv", CANCEL_ERRORS)

    async def aclose(self) -> None:
        await self._transport.aclose()
        self._transport.wsdl_client.close()

    def _lookup(self) -> str | None:
        """The look-up the configured WSDLs offer, GetInvoiceByFkey first (loads them: blocking)."""
        self._publish.load()
        if "GetInvoiceByFkey" in self._publish.operations:
            return "GetInvoiceByFkey"
        self._portal.load()
        if "listInvByCusFkey" in self._portal.operations:
            return "listInvByCusFkey"
        return None

    async def _published_earlier(self, fkey: str) -> Published:
        try:
            return await self.find(fkey)
        except Unconfirmed as exc:
            raise RetryableError(
                f"VNPT says a receipt with key {fkey!r} exists (ERR:13) but its look-up does not confirm"
                f" it: {exc}; trying again later, never issuing a second one",
                destination=self.name,
                operation="issue",
            ) from exc

    async def _call(self, service: _Service, operation: str, **params: Any) -> str | None:
        """One SOAP call; transport and SOAP failures become Retryable/PermanentError here."""
        name = self.name

        def error(failure: Failure) -> DeliveryError:
            return failure.error(name, operation)

        with map_soap_errors(error, error):
            proxy = await service.proxy()
            if operation not in service.operations:
                raise PermanentError(
                    f"{service.wsdl} offers no operation {operation}", destination=name, operation=operation
                )
            async with asyncio.timeout(self._timeout_s):
                result: str | None = await getattr(proxy, operation)(**params)
                return result

    def _parse(self, text: str | None, operation: str) -> Published | VnptFailure:
        try:
            return parse_result(text)
        except ValueError as exc:
            raise RetryableError(str(exc), destination=self.name, operation=operation) from exc

    def _error(
        self, failure: VnptFailure, operation: str, table: dict[str, tuple[str, bool]]
    ) -> RetryableError | PermanentError:
        meaning, retry = table.get(failure.code, ("unknown error", False))
        message = f"VNPT ERR:{failure.code}: {meaning}"
        if retry:
            return RetryableError(message, destination=self.name, operation=operation)
        return PermanentError(
            message, destination=self.name, operation=operation, remote_code=f"ERR:{failure.code}"
        )


def _texts(root: etree._Element, names: frozenset[str]) -> list[str]:
    return [
        (e.text or "").strip()
        for e in root.iter()
        if isinstance(e.tag, str) and etree.QName(e).localname.lower() in names
    ]


def _read(text: str | None) -> etree._Element:
    if not (text or "").strip().startswith("<"):
        raise Unconfirmed(f"the answer is not XML: {(text or '')[:80]!r}")
    try:
        return safe_xml(text or "")
    except XmlError as exc:
        raise Unconfirmed(f"the answer cannot be read: {exc}") from exc


def _number(values: list[str]) -> str:
    numbers = {v for v in values if v}
    if len(numbers) != 1:
        raise Unconfirmed(f"the answer gives {len(numbers)} invoice numbers")
    (number,) = numbers
    if not _digits(number) or int(number) == 0:
        raise Unconfirmed(f"the invoice number {number[:20]!r} is not a published one")
    return number


def _confirmed_by_key(text: str | None, fkey: str, a: VnptAccount) -> Published:
    """A GetInvoiceByFkey answer (its layout is not public: every element is read by name)."""
    root = _read(text)
    codes = [c for c in _texts(root, frozenset({"msgcode"})) if c.upper().startswith("ERR")]
    if codes:
        raise Unconfirmed(f"the look-up answered {codes[0][:40]}")
    keys = set(_texts(root, _KEY_NAMES))
    if keys != {fkey}:
        raise Unconfirmed(f"the answer names keys {sorted(keys)[:3]}, not {fkey!r}")
    number = _number(_texts(root, _NUMBER_NAMES))
    pattern = (_texts(root, frozenset({"pattern"})) or [a.pattern])[0] or a.pattern
    serial = (_texts(root, frozenset({"serial"})) or [a.serial])[0] or a.serial
    if (pattern, serial) != (a.pattern, a.serial):
        raise Unconfirmed(f"the answer is for {pattern};{serial}, not {a.pattern};{a.serial}")
    return Published(pattern, serial, fkey, number)


def _confirmed_by_listing(text: str | None, fkey: str, a: VnptAccount) -> Published:
    """A listInvByCusFkey answer: ``<Data><Item>…<pattern/><serial/><invNum/><status/>…</Item></Data>``,
    queried by our key; the published item (status 1) of our pattern and serial."""
    root = _read(text)
    ours = [
        item
        for item in root.iter("Item")
        if (item.findtext("pattern"), item.findtext("serial")) == (a.pattern, a.serial)
        and (item.findtext("status") or "1").strip() == "1"
    ]
    if len(ours) != 1:
        raise Unconfirmed(f"the listing has {len(ours)} published items of {a.pattern};{a.serial}")
    keys = set(_texts(ours[0], _KEY_NAMES))
    if keys and keys != {fkey}:
        raise Unconfirmed(f"the listing names keys {sorted(keys)[:3]}, not {fkey!r}")
    return Published(a.pattern, a.serial, fkey, _number(_texts(ours[0], frozenset({"invnum"}))))


def _wrapped(fkey: str, invoice: dict[str, Any]) -> etree._Element:
    hdon = safe_xml(to_xml("HDon", invoice))
    key = etree.Element("key")
    key.text = fkey
    hdon.insert(0, key)
    batch = etree.Element("DSHDon")
    batch.append(hdon)
    return batch
