"""Sandbox VNPT e-invoice service: ImportAndPublishInv, GetInvoiceByFkey and cancelInv over SOAP.

It checks what VNPT checks (the account, the invoice XML in the tax authority's layout, pattern and serial,
totals that add up, one invoice per Fkey) and answers VNPT's ``OK:``/``ERR:n`` strings. Look-ups answer
``<Invoice><Fkey/><Pattern/><Serial/><No/><Status/></Invoice>`` (assumed layout).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources

from lxml import etree

from lienthong.sandbox import soap
from lienthong.sandbox.base import Answer, FaultPlan, Peer, Received, Request

NAMESPACE = "http://tempuri.org/"
_REQUIRED = (
    "DLHDon/TTChung/KHMSHDon",
    "DLHDon/TTChung/KHHDon",
    "DLHDon/NDHDon/NBan/Ten",
    "DLHDon/NDHDon/NMua/Ten",
    "DLHDon/NDHDon/TToan/TgTTTBSo",
)


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
        pattern: str = "1",  # KHMSHDon: under Circular 78 the template symbol is one digit
        serial: str = "C26TBL",
        path: str = "/PublishService.asmx",
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__(faults)
        self.credentials = (account, ac_password, username, password)
        self.pattern, self.serial = pattern, serial
        self.invoices: dict[str, Issued] = {}
        self._numbers = itertools.count(1)
        self.routes[("GET", path)] = self._wsdl
        self.routes[("POST", path)] = self._call

    def error_answer(self) -> Answer:
        return soap.fault("Server", "Server was unable to process request.")

    def malformed_answer(self, rng: random.Random) -> Answer:
        return soap.malformed(rng, self._result("ImportAndPublishInv", "OK:1;C26TBL-x_1").body)

    async def _wsdl(self, request: Request) -> Answer:
        return Answer(
            200, (resources.files("lienthong.adapters") / "wsdl" / "vnpt_publish.wsdl").read_bytes(), soap.XML
        )

    async def _call(self, request: Request) -> Answer:
        try:
            call = soap.parse_body(request.body)
        except soap.SoapRequestError as exc:
            return soap.fault("Client", str(exc))
        operation = etree.QName(call).localname
        args = soap.fields(call)
        user = args.get("username", args.get("userName", ""))
        secret = args.get("password", args.get("userPass", ""))
        if (args.get("Account"), args.get("ACpass"), user, secret) != self.credentials:
            return self._result(operation, "ERR:1")
        if operation == "ImportAndPublishInv":
            return self._result(operation, self._publish(args))
        if operation == "GetInvoiceByFkey":
            return self._result(operation, self._find(args.get("fkey", "")))
        if operation == "cancelInv":
            return self._result(operation, self._cancel(args.get("fkey", "")))
        return soap.fault("Client", f"unknown operation {operation}")

    def _publish(self, args: dict[str, str]) -> str:
        if (args.get("pattern"), args.get("serial")) != (self.pattern, self.serial):
            return "ERR:20"
        try:
            batch = etree.fromstring(args.get("xmlInvData", "").encode(), soap.PARSER)
        except etree.XMLSyntaxError:
            return "ERR:3"
        if batch.tag != "DSHDon" or getattr(batch.getroottree().docinfo, "doctype", ""):
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
        fkey = (invoice.findtext("Fkey") or "").strip()
        if not fkey or any(not (invoice.findtext(path) or "").strip() for path in _REQUIRED):
            return "ERR:3"
        if (invoice.findtext("DLHDon/TTChung/KHMSHDon"), invoice.findtext("DLHDon/TTChung/KHHDon")) != (
            self.pattern,
            self.serial,
        ):
            return "ERR:20"
        if not _totals_add_up(invoice):
            return "ERR:3"
        if fkey in self.invoices:
            return "ERR:13"
        issued = Issued(
            fkey,
            self.pattern,
            self.serial,
            f"{next(self._numbers):07d}",
            etree.tostring(invoice, encoding="utf-8"),
        )
        self.invoices[fkey] = issued
        self.record(
            Received(
                "ImportAndPublishInv",
                fkey,
                invoice.findtext("DLHDon/NDHDon/NMua/MKHang") or "",
                {"fkey": fkey, "number": issued.number},
            )
        )
        return f"{fkey}_{issued.number}"

    def _find(self, fkey: str) -> str:
        issued = self.invoices.get(fkey)
        if issued is None:
            return "ERR:6"
        root = etree.Element("Invoice")
        for tag, value in (
            ("Fkey", fkey),
            ("Pattern", issued.pattern),
            ("Serial", issued.serial),
            ("No", issued.number),
            ("Status", issued.status),
        ):
            etree.SubElement(root, tag).text = value
        return etree.tostring(root, encoding="unicode")

    def _cancel(self, fkey: str) -> str:
        issued = self.invoices.get(fkey)
        if issued is None:
            return "ERR:6"
        issued.status = "3"
        return "OK:"

    def _result(self, operation: str, text: str) -> Answer:
        return Answer(
            200,
            soap.envelope(soap.element(f"{operation}Response", NAMESPACE, {f"{operation}Result": text})),
            soap.XML,
        )


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
