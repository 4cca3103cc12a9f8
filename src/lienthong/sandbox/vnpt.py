"""Sandbox VNPT e-invoice tenant: PublishService, BusinessService and PortalService over SOAP.

It answers as VNPT's services do, as far as public clients show them (docs/contracts.md §1):
- ``PublishService.asmx``: ``ImportAndPublishInv`` takes VNPT's TT78 input layout
  (``<DSHDon><HDon><key/><DLHDon><TTChung/><NDHDon/></DLHDon></HDon></DSHDon>``, the key first, pattern
  and serial as SOAP parameters) and answers ``OK:pattern;serial-key_no`` or ``ERR:n``; TT78 tenants
  (``tt78=True``) also offer ``GetInvoiceByFkey``, older ones do not (their WSDL lacks it).
- ``BusinessService.asmx``: ``cancelInv``.
- ``PortalService.asmx``: ``listInvByCusFkey``, answering ``<Data><Item>…<invNum/>…</Item></Data>``.
Each serves its WSDL at ``?wsdl``. ``GetInvoiceByFkey``'s answer layout is not public: this one answers
``<Results><MSGCODE/><Fkey/><Pattern/><Serial/><No/></Results>``, and ``<RV><MSGCODE>ERR:404</MSGCODE></RV>``
when nothing is found. ``lookup_fault`` makes the look-ups answer what a careless or hostile peer might.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Literal

from lxml import etree

from lienthong import xmlsafe
from lienthong.sandbox import soap
from lienthong.sandbox.base import Answer, FaultPlan, Peer, Received, Request
from lienthong.xmlsafe import XmlError, XmlLimits

NAMESPACE = "http://tempuri.org/"
_INVOICES = XmlLimits(max_bytes=soap.MAX_REQUEST)
"""How much invoice XML one ImportAndPublishInv reads (VNPT's batches: up to 5000 invoices)."""
_REQUIRED = (
    "DLHDon/TTChung/DVTTe",
    "DLHDon/NDHDon/NBan/Ten",
    "DLHDon/NDHDon/NMua/Ten",
    "DLHDon/NDHDon/TToan/TgTTTBSo",
)
LookupFault = Literal["empty", "other_key", "doctype", "not_found"]


@dataclass
class Issued:
    fkey: str
    pattern: str
    serial: str
    number: str
    xml: bytes
    status: str = "1"  # 1 issued, 3 cancelled


class VnptSandbox(Peer):
    def __init__(
        self,
        *,
        account: str = "h56admin",
        ac_password: str = "sandbox-acpass",  # noqa: S107 (a simulator's own test credential)
        username: str = "h56service",
        password: str = "sandbox-pass",  # noqa: S107
        pattern: str = "1/001",  # TT78 patterns as public clients send them
        serial: str = "C26TAA",
        tt78: bool = True,
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__(faults)
        self.credentials = (account, ac_password, username, password)
        self.pattern, self.serial = pattern, serial
        self.tt78 = tt78
        self.invoices: dict[str, Issued] = {}
        self.lookup_fault: LookupFault | None = None
        self._numbers = itertools.count(1)
        for service in ("Publish", "Business", "Portal"):
            path = f"/{service}Service.asmx"
            self.routes[("GET", path)] = self._wsdl
            self.routes[("POST", path)] = self._call

    def error_answer(self) -> Answer:
        return soap.fault("Server", "Server was unable to process request.")

    def malformed_answer(self, rng: random.Random) -> Answer:
        return soap.malformed(rng, self._result("ImportAndPublishInv", "OK:1/001;C26TAA-x_1").body)

    def wsdl(self, service: str) -> bytes:
        """The WSDL this tenant serves for ``service`` (publish, business or portal)."""
        text = (resources.files("lienthong.adapters") / "wsdl" / f"vnpt_{service}.wsdl").read_bytes()
        if service == "publish" and not self.tt78:
            text = _without_operation(text, "GetInvoiceByFkey")
        return text

    async def _wsdl(self, request: Request) -> Answer:
        service = request.path.rsplit("/", 1)[-1].removesuffix("Service.asmx").lower()
        return Answer(200, self.wsdl(service), soap.XML)

    async def _call(self, request: Request) -> Answer:
        try:
            call = soap.parse_body(request.body)
        except soap.SoapRequestError as exc:
            return soap.fault("Client", str(exc))
        operation = etree.QName(call).localname
        service = request.path.rsplit("/", 1)[-1]
        handler = self._operations().get((service, operation))
        if handler is None:
            return soap.fault(
                "Client", f"Server did not recognize the value of HTTP Header SOAPAction: {operation}"
            )
        args = soap.fields(call)
        if not self._authorized(operation, args):
            return self._result(operation, "ERR:1")
        return self._result(operation, handler(args))

    def _operations(self) -> dict[tuple[str, str], Callable[[dict[str, str]], str]]:
        ops: dict[tuple[str, str], Callable[[dict[str, str]], str]] = {
            ("PublishService.asmx", "ImportAndPublishInv"): self._publish,
            ("BusinessService.asmx", "cancelInv"): self._cancel,
            ("PortalService.asmx", "listInvByCusFkey"): self._listing,
        }
        if self.tt78:
            ops[("PublishService.asmx", "GetInvoiceByFkey")] = self._find
        return ops

    def _authorized(self, operation: str, args: dict[str, str]) -> bool:
        account, ac_password, username, password = self.credentials
        user = args.get("username", args.get("userName", ""))
        secret = args.get("password", args.get("userPass", ""))
        if (user, secret) != (username, password):
            return False
        if operation in ("ImportAndPublishInv", "cancelInv"):
            return (args.get("Account"), args.get("ACpass")) == (account, ac_password)
        return True

    def _publish(self, args: dict[str, str]) -> str:
        if (args.get("pattern"), args.get("serial")) != (self.pattern, self.serial):
            return "ERR:20"
        try:
            batch = xmlsafe.parse(args.get("xmlInvData", ""), source="xmlInvData", limits=_INVOICES)
        except XmlError:
            return "ERR:3"
        if batch.tag != "DSHDon":
            return "ERR:3"
        invoices = batch.findall("HDon")
        if not invoices:
            return "ERR:3"
        if len(invoices) > 5000:
            return "ERR:10"
        results = []
        for invoice in invoices:
            outcome = self._publish_one(invoice)
            if outcome.startswith("ERR"):
                return outcome
            results.append(outcome)
        return f"OK:{self.pattern};{self.serial}-{','.join(results)}"

    def _publish_one(self, invoice: etree._Element) -> str:
        first = invoice[0] if len(invoice) else None
        fkey = (first.text or "").strip() if first is not None and first.tag == "key" else ""
        if not fkey or any(not (invoice.findtext(path) or "").strip() for path in _REQUIRED):
            return "ERR:3"
        if not _totals_add_up(invoice):
            return "ERR:3"
        if fkey in self.invoices:
            return "ERR:13"
        number = f"{next(self._numbers):07d}"
        issued = Issued(fkey, self.pattern, self.serial, number, etree.tostring(invoice, encoding="utf-8"))
        self.invoices[fkey] = issued
        buyer = invoice.findtext("DLHDon/NDHDon/NMua/MKHang") or ""
        self.record(Received("ImportAndPublishInv", fkey, buyer, {"fkey": fkey, "number": number}))
        return f"{fkey}_{number}"

    def _find(self, args: dict[str, str]) -> str:
        fkey = args.get("fkey", "")
        issued = self.invoices.get(fkey)
        if self.lookup_fault == "doctype":
            return '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><Results><No>&x;</No></Results>'
        if issued is None or self.lookup_fault == "not_found":
            return "<RV><MSGCODE>ERR:404</MSGCODE><MSGDESC>Không tìm thấy hóa đơn</MSGDESC></RV>"
        values = {"Fkey": fkey, "Pattern": issued.pattern, "Serial": issued.serial, "No": issued.number}
        if self.lookup_fault == "empty":
            values.update(Fkey="", No="")
        elif self.lookup_fault == "other_key":
            values["Fkey"] = f"{fkey}-other"
        root = etree.Element("Results")
        etree.SubElement(root, "MSGCODE").text = "OK"
        for tag, value in values.items():
            etree.SubElement(root, tag).text = value
        return etree.tostring(root, encoding="unicode")

    def _listing(self, args: dict[str, str]) -> str:
        issued = self.invoices.get(args.get("key", ""))
        data = etree.Element("Data")
        if issued is not None and self.lookup_fault != "not_found":
            item = etree.SubElement(data, "Item")
            number = "" if self.lookup_fault == "empty" else issued.number
            values = {
                "index": "1", "cusCode": "", "month": "", "name": "Biên lai thu phí, lệ phí",
                "publishDate": "12/2/2026 9:30:00 AM", "signStatus": "1", "pattern": issued.pattern,
                "serial": issued.serial, "invNum": number, "amount": "0", "status": issued.status,
                "cusname": "", "payment": "1", "converted": "0",
            }  # fmt: skip
            for tag, value in values.items():
                etree.SubElement(item, tag).text = value
        return etree.tostring(data, encoding="unicode")

    def _cancel(self, args: dict[str, str]) -> str:
        issued = self.invoices.get(args.get("fkey", ""))
        if issued is None:
            return "ERR:2"
        if issued.status == "3":
            return "ERR:8"
        issued.status = "3"
        return "OK:"

    def _result(self, operation: str, text: str) -> Answer:
        return Answer(
            200,
            soap.envelope(soap.element(f"{operation}Response", NAMESPACE, {f"{operation}Result": text})),
            soap.XML,
        )


def _without_operation(wsdl: bytes, operation: str) -> bytes:
    """An older tenant's WSDL: ``wsdl`` without ``operation`` (its elements, messages and bindings)."""
    root = xmlsafe.parse(wsdl, source="the bundled WSDL")
    doomed = {operation, f"{operation}Response", f"{operation}SoapIn", f"{operation}SoapOut"}
    for node in list(root.iter()):
        parent = node.getparent()
        if isinstance(node.tag, str) and node.get("name") in doomed and parent is not None:
            parent.remove(node)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _totals_add_up(invoice: etree._Element) -> bool:
    try:
        lines = sum(
            (Decimal(x.text or "0") for x in invoice.iterfind("DLHDon/NDHDon/DSHHDVu/HHDVu/ThTien")),
            Decimal(0),
        )
        total = Decimal(invoice.findtext("DLHDon/NDHDon/TToan/TgTTTBSo") or "")
    except InvalidOperation:
        return False
    return lines == total
