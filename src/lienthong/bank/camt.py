"""ISO 20022 camt.053 (bank to customer statement) and camt.054 (debit/credit notification), read as a
stream, namespace versions 001.02 to 001.08.

What differs between the versions, as public readers of bank files show it (docs/contracts.md §7):

- the entry's status: ``<Sts>BOOK</Sts>`` up to 001.07, ``<Sts><Cd>BOOK</Cd></Sts>`` from 001.08;
- a related party: ``<Dbtr><Nm>`` up to 001.07, ``<Dbtr><Pty><Nm>`` from 001.08;
- a transaction's own amount: ``<TxDtls><AmtDtls><TxAmt><Amt>`` in 001.02, ``<TxDtls><Amt>`` with its
  own ``<CdtDbtInd>`` from 001.03 (both are read in every version).

The parse is lxml's ``iterparse`` over the statement, balance and entry elements only, with the hardened
settings of DESIGN §6: no DTD (a file that carries one is refused), no entities, no network, lxml's
limits on depth and text size. Each entry is read once, child by child against tag names made once per
file, then dropped, so memory stays flat however long the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from lxml import etree

from lienthong.bank.records import (
    Item,
    Kind,
    StatementError,
    StatementSummary,
    Transaction,
    plain_amount,
)

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:"
VERSIONS = ("02", "03", "04", "05", "06", "07", "08")
"""The namespace versions read: camt.05x.001.02 to camt.05x.001.08."""
_NAMESPACE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:(camt\.05[34])\.001\.(\d\d)$")
_NOT_PROVIDED = "NOTPROVIDED"


def looks_like_xml(head: bytes) -> bool:
    """Whether a file starting with ``head`` is XML (after a byte-order mark and white space)."""
    return head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<")


@dataclass(frozen=True)
class _Tags:
    """The qualified tag names of one namespace, made once per file."""

    Document: str
    Stmt: str
    Ntfctn: str
    Bal: str
    Ntry: str
    Id: str
    IBAN: str
    Othr: str
    Acct: str
    Ccy: str
    Tp: str
    CdOrPrtry: str
    Cd: str
    Prtry: str
    Amt: str
    CdtDbtInd: str
    RvslInd: str
    Sts: str
    BookgDt: str
    ValDt: str
    Dt: str
    DtTm: str
    AcctSvcrRef: str
    NtryRef: str
    NtryDtls: str
    TxDtls: str
    AddtlNtryInf: str
    Refs: str
    EndToEndId: str
    TxId: str
    InstrId: str
    AmtDtls: str
    TxAmt: str
    InstdAmt: str
    RmtInf: str
    Ustrd: str
    Strd: str
    CdtrRefInf: str
    Ref: str
    RltdPties: str
    Dbtr: str
    Pty: str
    Nm: str
    DbtrAcct: str
    AddtlTxInf: str

    @classmethod
    def of(cls, namespace: str) -> _Tags:
        return cls(**{name: f"{{{namespace}}}{name}" for name in cls.__dataclass_fields__})


def read(path: Path, *, name: str) -> Iterator[Item]:
    """Every transaction of the camt file at ``path``, each statement's summary after its transactions.
    Raises StatementError naming ``name``, the line and the element."""
    reader = _Reader(name)
    with path.open("rb") as handle:  # closed however the parse ends (lxml leaves a file it opened open)
        context = etree.iterparse(
            handle,
            events=("start", "end"),
            tag=("{*}Document", "{*}Stmt", "{*}Ntfctn", "{*}Bal", "{*}Ntry"),
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        try:
            for event, element in context:
                yield from reader.handle(event, element)
        except etree.XMLSyntaxError as exc:
            line = exc.lineno or 0
            raise StatementError(
                name, f"is not well-formed XML: {exc.msg}", line=line, element=reader.within
            ) from exc
    if reader.tags is None:
        raise StatementError(name, "is XML but holds no camt.053 or camt.054 Document", line=1)


class _Reader:
    """The state of one file's parse: its namespace, the statement being read, and its running sums."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tags: _Tags | None = None
        self.kind: Kind = "camt.053"
        self.version = ""
        self.within = ""  # the innermost element being read, for errors
        self.index = -1
        self._statement_line = 0
        self._balances: dict[str, Decimal] = {}
        self._entries = 0
        self._sum = Decimal(0)
        self._booked = Decimal(0)
        self._pending = 0
        self._currency = ""

    def handle(self, event: str, element: etree._Element) -> Iterator[Item]:
        tags = self.tags
        if tags is None:
            if event == "start" and isinstance(element.tag, str):
                self._start_document(element)
            return
        tag = element.tag
        if event == "start":
            if tag in (tags.Stmt, tags.Ntfctn):
                self._start_statement(element)
            elif tag == tags.Ntry:
                self.within = "Ntry"
            elif tag == tags.Bal:
                self.within = "Bal"
            return
        if tag == tags.Ntry:
            yield from self._entry(element, tags)
            _drop(element, tags.Ntry)
            self.within = "Stmt" if self.kind == "camt.053" else "Ntfctn"
        elif tag == tags.Bal:
            self._balance(element, tags)
        elif tag in (tags.Stmt, tags.Ntfctn):
            yield self._summary(element, tags)
            _drop(element, tag)
            self.within = ""

    def _start_document(self, element: etree._Element) -> None:
        if getattr(element.getroottree().docinfo, "doctype", ""):  # lxml-stubs lack DocInfo.doctype
            raise StatementError(self.name, "carries a DTD, which is refused", line=1)
        namespace = etree.QName(element).namespace or ""
        found = _NAMESPACE.match(namespace)
        if found is None:
            raise StatementError(
                self.name,
                f"is not camt.053 or camt.054: its Document is in namespace {namespace or '(none)'!r}",
                line=_line(element),
                element="Document",
            )
        kind, version = found.groups()
        if version not in VERSIONS:
            raise StatementError(
                self.name,
                f"is {kind}.001.{version}; lienthong reads {kind}.001.{VERSIONS[0]} to .001.{VERSIONS[-1]}",
                line=_line(element),
                element="Document",
            )
        self.kind = "camt.053" if kind == "camt.053" else "camt.054"
        self.version = f"001.{version}"
        self.tags = _Tags.of(namespace)

    def _start_statement(self, element: etree._Element) -> None:
        self.index += 1
        self.within = etree.QName(element).localname
        self._statement_line = _line(element)
        self._balances = {}
        self._entries = 0
        self._sum = Decimal(0)
        self._booked = Decimal(0)
        self._pending = 0
        self._currency = ""

    def _summary(self, element: etree._Element, t: _Tags) -> StatementSummary:
        account, currency = "", ""
        acct = element.find(t.Acct)
        if acct is not None:
            account = _account(acct, t)
            currency = (acct.findtext(t.Ccy) or "").strip()
        return StatementSummary(
            file=self.name,
            index=self.index,
            kind=self.kind,
            version=self.version,
            id=(element.findtext(t.Id) or "").strip(),
            account=account,
            currency=currency or self._currency,
            line=self._statement_line,
            balances=self._balances,
            entries=self._entries,
            entries_sum=self._sum,
            booked_sum=self._booked,
            pending=self._pending,
        )

    def _balance(self, element: etree._Element, t: _Tags) -> None:
        code = (
            element.findtext(f"{t.Tp}/{t.CdOrPrtry}/{t.Cd}")
            or element.findtext(f"{t.Tp}/{t.CdOrPrtry}/{t.Prtry}")
            or ""
        ).strip()
        if not code:
            raise self._error(element, "Bal", "has no type code (Tp/CdOrPrtry/Cd)")
        amount, currency = self._amount(element.find(t.Amt), "Bal")
        sign = self._sign(element.find(t.CdtDbtInd), element, "Bal")
        self._balances[code] = amount * sign
        self._currency = self._currency or currency

    def _entry(  # noqa: PLR0912 (one branch per child element, in the schema's order)
        self, element: etree._Element, t: _Tags
    ) -> Iterator[Transaction]:
        line = _line(element)
        amount_element = indicator = None
        reversal = False
        status = ""
        booked = value_date = None
        entry_refs: list[str] = []
        info = ""
        details: list[etree._Element] = []
        for child in element:
            tag = child.tag
            if tag == t.Amt:
                amount_element = child
            elif tag == t.CdtDbtInd:
                indicator = child
            elif tag == t.Sts:
                status = (child.text or "").strip() or (child.findtext(t.Cd) or "").strip()
            elif tag == t.BookgDt:
                booked = self._date(child, t)
            elif tag == t.ValDt:
                value_date = self._date(child, t)
            elif tag in (t.AcctSvcrRef, t.NtryRef):
                entry_refs.append((child.text or "").strip())
            elif tag == t.RvslInd:
                reversal = (child.text or "").strip().lower() == "true"
            elif tag == t.NtryDtls:
                details.extend(child.iterchildren(t.TxDtls))
            elif tag == t.AddtlNtryInf:
                info = (child.text or "").strip()
        amount, currency = self._amount(amount_element, "Ntry", line)
        sign = self._sign(indicator, element, "Ntry")
        signed = amount * sign
        self._entries += 1
        self._sum += signed
        if status == "BOOK":
            self._booked += signed
        else:
            self._pending += 1
        self._currency = self._currency or currency
        read = [self._detail(detail, t) for detail in details]
        statement = self.index
        if len(read) > 1 and all(d.amount is not None for d in read):
            for d in read:
                assert d.amount is not None
                own = d.sign if d.sign is not None else sign
                yield Transaction(
                    d.amount * own, d.currency or currency, booked, value_date, status,
                    _references(d.references, entry_refs), d.remittance or info, d.debtor,
                    d.debtor_account, reversal, statement, line,
                )  # fmt: skip
            return
        references = _references([r for d in read for r in d.references], entry_refs)
        remittance = " ".join(d.remittance for d in read if d.remittance) or info
        first = read[0] if read else _NO_DETAIL
        yield Transaction(
            signed, currency, booked, value_date, status, references, remittance, first.debtor,
            first.debtor_account, reversal, statement, line,
        )  # fmt: skip

    def _detail(self, element: etree._Element, t: _Tags) -> _Detail:
        amount: Decimal | None = None
        currency = ""
        sign: int | None = None
        references: list[str] = []
        remittance: list[str] = []
        debtor = debtor_account = ""
        for child in element:
            tag = child.tag
            if tag == t.Amt:
                amount, currency = self._amount(child, "TxDtls")
            elif tag == t.CdtDbtInd:
                sign = self._sign(child, element, "TxDtls")
            elif tag == t.AmtDtls and amount is None:
                found = child.find(f"{t.TxAmt}/{t.Amt}")
                if found is None:
                    found = child.find(f"{t.InstdAmt}/{t.Amt}")
                if found is not None:
                    amount, currency = self._amount(found, "TxDtls")
            elif tag == t.Refs:
                references.extend(
                    (child.findtext(name) or "").strip()
                    for name in (t.EndToEndId, t.TxId, t.AcctSvcrRef, t.InstrId)
                )
            elif tag == t.RmtInf:
                remittance.extend((u.text or "").strip() for u in child.iterchildren(t.Ustrd))
                references.extend(
                    (found.text or "").strip() for found in child.iterfind(f"{t.Strd}/{t.CdtrRefInf}/{t.Ref}")
                )
            elif tag == t.RltdPties:
                party = child.find(t.Dbtr)
                if party is not None:
                    debtor = (party.findtext(t.Nm) or party.findtext(f"{t.Pty}/{t.Nm}") or "").strip()
                account = child.find(t.DbtrAcct)
                if account is not None:
                    debtor_account = _account(account, t)
            elif tag == t.AddtlTxInf:
                remittance.append((child.text or "").strip())
        text = " ".join(r for r in remittance if r)
        return _Detail(amount, currency, sign, references, text, debtor, debtor_account)

    def _amount(self, element: etree._Element | None, within: str, line: int = 0) -> tuple[Decimal, str]:
        if element is None:
            raise StatementError(self.name, "has no Amt", line=line, element=within)
        text = (element.text or "").strip()
        amount = plain_amount(text)
        if amount is None:
            raise self._error(
                element,
                f"{within}/Amt",
                f"amount {text[:40]!r} is not a non-negative decimal number"
                " (at most 18 digits, 5 of them after the point)",
            )
        return amount, (element.get("Ccy") or "").strip()

    def _sign(self, element: etree._Element | None, parent: etree._Element, within: str) -> int:
        value = (element.text or "").strip() if element is not None else ""
        if value == "CRDT":
            return 1
        if value == "DBIT":
            return -1
        where = element if element is not None else parent
        found = f"{value[:20]!r}" if element is not None else "none"
        raise self._error(where, f"{within}/CdtDbtInd", f"must be CRDT or DBIT, found {found}")

    def _date(self, element: etree._Element, t: _Tags) -> date | None:
        text = (element.findtext(t.Dt) or element.findtext(t.DtTm) or "").strip()
        if not text:
            return None
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            name = etree.QName(element).localname
            raise self._error(element, name, f"date {text[:40]!r} is not an ISO 8601 date") from None

    def _error(self, element: etree._Element, where: str, problem: str) -> StatementError:
        return StatementError(self.name, problem, line=_line(element), element=where)


@dataclass(frozen=True, slots=True)
class _Detail:
    amount: Decimal | None
    currency: str
    sign: int | None
    references: list[str]
    remittance: str
    debtor: str
    debtor_account: str


_NO_DETAIL = _Detail(None, "", None, [], "", "", "")


def _references(detail: list[str], entry: list[str]) -> tuple[str, ...]:
    """The references, most specific first, once each, without empties and ``NOTPROVIDED``."""
    seen: dict[str, None] = {}
    for ref in (*detail, *entry):
        if ref and ref.upper() != _NOT_PROVIDED:
            seen[ref] = None
    return tuple(seen)


def _line(element: etree._Element) -> int:
    """The element's line in the file (0 when lxml does not know it)."""
    return int(getattr(element, "sourceline", 0) or 0)


def _account(element: etree._Element, t: _Tags) -> str:
    """An account's identifier: its IBAN, or its other identification."""
    return (element.findtext(f"{t.Id}/{t.IBAN}") or element.findtext(f"{t.Id}/{t.Othr}/{t.Id}") or "").strip()


def _drop(element: etree._Element, tag: str) -> None:
    """Free a read element, and its read siblings of the same tag (not the statement's header)."""
    element.clear()
    previous = element.getprevious()
    while previous is not None and previous.tag == tag:
        parent = previous.getparent()
        assert parent is not None
        parent.remove(previous)
        previous = element.getprevious()
