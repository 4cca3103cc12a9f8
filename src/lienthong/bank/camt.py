"""ISO 20022 camt.053 (bank to customer statement) and camt.054 (debit/credit notification), read as a
stream, namespace versions 001.02 to 001.08.

What differs between the versions, as public readers of bank files show it (docs/contracts.md §7):

- the entry's status: ``<Sts>BOOK</Sts>`` up to 001.07, ``<Sts><Cd>BOOK</Cd></Sts>`` from 001.08;
- a related party: ``<Dbtr><Nm>`` up to 001.07, ``<Dbtr><Pty><Nm>`` from 001.08;
- a transaction's own amount: ``<TxDtls><AmtDtls><TxAmt><Amt>`` in 001.02, ``<TxDtls><Amt>`` with its
  own ``<CdtDbtInd>`` from 001.03 (both are read in every version).

The parse is lxml's ``iterparse`` over the statement, balance and entry elements only, with ``xmlsafe``'s
one configuration (DESIGN §6): no DTD (a file that carries one is refused), no entities, no network, each
entry and statement header refused when it nests deeper than ``xmlsafe``'s limit. Each entry is read once,
child by child against tag names made once per file, then dropped, so memory stays flat however long the
file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from lxml import etree

from lienthong import xmlsafe
from lienthong.bank.records import (
    Item,
    Kind,
    StatementError,
    StatementSummary,
    Transaction,
    plain_amount,
)
from lienthong.xmlsafe import XmlMalformed, XmlRefused

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:"
VERSIONS = ("02", "03", "04", "05", "06", "07", "08")
"""The namespace versions read: camt.05x.001.02 to camt.05x.001.08."""
_NAMESPACE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:(camt\.05[34])\.001\.(\d\d)$")
_NOT_PROVIDED = "NOTPROVIDED"
MAX_BALANCE_CODES = 64
"""Distinct balance codes one statement may carry (ISO 20022 defines about twenty); more is a hostile or
broken file, refused rather than kept in memory."""


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
    with path.open("rb") as handle:  # closed however the parse ends (lxml leaves a file it opened open)
        reader = _Reader(name, _namespace(handle.read(_HEAD), name))
        handle.seek(0)
        t = reader.tags
        # End events of these elements only: one Python step per entry, not one per element.
        context = xmlsafe.iterparse(
            handle,
            events=("end",),
            # Any namespace (lxml matches local names in C): an entry or a statement in another namespace
            # than the file's is refused, never skipped, so no credit vanishes unread.
            tag=("{*}Ntry", "{*}Bal", "{*}Stmt", "{*}Ntfctn", "{*}Document"),
            source=name,
        )
        ntry, bal, statements = t.Ntry, t.Bal, (t.Stmt, t.Ntfctn)
        try:
            for _, element in context:
                tag = element.tag
                if tag == ntry:
                    parent = element.getparent()
                    if parent is None or parent.tag not in statements:
                        raise reader.stray(element, "Ntry", "is an entry outside any statement")
                    reader.check_depth(element)
                    yield from reader.entry(element)
                    _drop(element, ntry)
                elif tag == bal:
                    parent = element.getparent()
                    if parent is None or parent.tag not in statements:  # one in an entry would pass for CLBD
                        raise reader.stray(element, "Bal", "is a balance outside any statement's header")
                    reader.balance(element)
                elif tag == t.Document:
                    reader.check_depth(element)
                    reader.documents += 1
                elif tag in statements:
                    reader.check_depth(element)  # its header: the entries were read and dropped
                    yield reader.summary(element)
                    _drop(element, tag)
                else:
                    qname = etree.QName(element)
                    namespace = qname.namespace or "(none)"
                    problem = f"is in namespace {namespace!r}, not the file's {reader.namespace!r}"
                    raise reader.stray(element, qname.localname, problem)
        except XmlRefused as exc:
            raise StatementError(name, exc.problem, line=exc.line, element=reader.last) from exc
        except XmlMalformed as exc:
            raise StatementError(
                name, exc.problem, line=exc.line, element=_element_named(exc.problem) or reader.last
            ) from exc
    if not reader.documents:
        raise StatementError(name, f"holds no Document in namespace {reader.namespace}", line=1)


_LIMITS = xmlsafe.DEFAULT_LIMITS
"""Only the depth applies: the file's size is capped by ``read_statements`` (``max_bytes``)."""
_HEAD = 65_536
"""How much of a file is read to find its namespace: the Document's start tag is in it."""
_SNIFF = re.compile(rb"urn:iso:std:iso:20022:tech:xsd:(camt\.\d{3})\.001\.(\d\d)")
_MISMATCH = re.compile(r"(?:mismatch: |in tag |tag name )(\w+)")


def _namespace(head: bytes, name: str) -> str:
    """The camt namespace the file's head names; StatementError for a DTD or anything not camt."""
    lowered = head.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise StatementError(name, "carries a DTD, which is refused", line=1)
    found = _SNIFF.search(head)
    if found is None:
        raise StatementError(
            name,
            f"is not camt.053 or camt.054: no ISO 20022 camt namespace in its first {_HEAD // 1024} KiB",
            line=1,
            element="Document",
        )
    kind, version = found.group(1).decode(), found.group(2).decode()
    line = head.count(b"\n", 0, found.start()) + 1
    if kind not in ("camt.053", "camt.054"):
        raise StatementError(
            name, f"is {kind}.001.{version}, not camt.053 or camt.054", line=line, element="Document"
        )
    if version not in VERSIONS:
        raise StatementError(
            name,
            f"is {kind}.001.{version}; lienthong reads {kind}.001.{VERSIONS[0]} to .001.{VERSIONS[-1]}",
            line=line,
            element="Document",
        )
    return f"{NAMESPACE}{kind}.001.{version}"


def _element_named(message: str) -> str:
    """The element libxml2's message names ("Opening and ending tag mismatch: Ntry line 4 and Ntryy")."""
    found = _MISMATCH.search(message or "")
    return found.group(1) if found else ""


class _Reader:
    """The state of one file's parse: its namespace, the statement being read, and its running sums."""

    def __init__(self, name: str, namespace: str) -> None:
        self.name = name
        self.namespace = namespace
        self.tags = _Tags.of(namespace)
        kind = namespace.removeprefix(NAMESPACE)[:8]
        self.kind: Kind = "camt.053" if kind == "camt.053" else "camt.054"
        self.version = namespace[-6:]
        self.last = ""  # the last element read whole, for errors the parser cannot place
        self.index = 0
        self.documents = 0
        self._parent: etree._Element | None = None
        self._above = 0
        self._balances: dict[str, Decimal] = {}
        self._entries = 0
        self._sum = Decimal(0)
        self._booked = Decimal(0)
        self._pending = 0
        self._currency = ""

    def stray(self, element: etree._Element, where: str, problem: str) -> StatementError:
        """An element the reader cannot place: refused, naming it and its line."""
        return self._error(element, where, problem)

    def check_depth(self, element: etree._Element) -> None:
        """Refuse an element read whole whose subtree nests deeper than ``xmlsafe``'s limit (its ancestors
        counted): streamed, the file is never held whole, so the depth is checked piece by piece."""
        parent = element.getparent()
        if parent is not self._parent:  # an entry's ancestors are its statement's: counted once per statement
            self._parent, self._above = parent, sum(1 for _ in element.iterancestors())
        xmlsafe.check_depth(element, _LIMITS.max_depth, source=self.name, above=self._above)

    def summary(self, element: etree._Element) -> StatementSummary:
        """The statement that just ended; the running sums start again for the next."""
        t = self.tags
        self.last = etree.QName(element).localname
        account, currency = "", ""
        acct = element.find(t.Acct)
        if acct is not None:
            account = _account(acct, t)
            currency = (acct.findtext(t.Ccy) or "").strip()
        summary = StatementSummary(
            file=self.name,
            index=self.index,
            kind=self.kind,
            version=self.version,
            id=(element.findtext(t.Id) or "").strip(),
            account=account,
            currency=currency or self._currency,
            line=_line(element),
            balances=self._balances,
            entries=self._entries,
            entries_sum=self._sum,
            booked_sum=self._booked,
            pending=self._pending,
        )
        self.index += 1
        self._balances = {}
        self._entries, self._pending = 0, 0
        self._sum, self._booked = Decimal(0), Decimal(0)
        self._currency = ""
        return summary

    def balance(self, element: etree._Element) -> None:
        t = self.tags
        self.last = "Bal"
        code = (
            element.findtext(f"{t.Tp}/{t.CdOrPrtry}/{t.Cd}")
            or element.findtext(f"{t.Tp}/{t.CdOrPrtry}/{t.Prtry}")
            or ""
        ).strip()
        if not code:
            raise self._error(element, "Bal", "has no type code (Tp/CdOrPrtry/Cd)")
        if code not in self._balances and len(self._balances) >= MAX_BALANCE_CODES:
            raise self._error(
                element, "Bal", f"is one of more than {MAX_BALANCE_CODES} balance codes in one statement"
            )
        amount, currency = self._amount(element.find(t.Amt), "Bal")
        sign = self._sign(element.find(t.CdtDbtInd), element, "Bal")
        self._balances[code] = amount * sign
        self._currency = self._currency or currency

    def entry(self, element: etree._Element) -> list[Transaction]:  # noqa: PLR0912 (a branch per child)
        """The entry's transactions: one, or one per transaction detail when each has its own amount."""
        t = self.tags
        self.last = "Ntry"
        line = _line(element)
        amount_element = indicator = None
        reversal = False
        status = ""
        booked = value_date = None
        entry_refs: list[str] = []
        info = ""
        details: list[_Detail] = []
        for child in element:
            tag = child.tag
            if tag == t.Amt:
                amount_element = child
            elif tag == t.CdtDbtInd:
                indicator = child
            elif tag == t.Sts:
                text = child.text
                status = text.strip() if text and text.strip() else _first_text(child)
            elif tag == t.BookgDt:
                booked = self._date(child)
            elif tag == t.ValDt:
                value_date = self._date(child)
            elif tag in (t.AcctSvcrRef, t.NtryRef):
                entry_refs.append((child.text or "").strip())
            elif tag == t.NtryDtls:
                details.extend(self._detail(d) for d in child if d.tag == t.TxDtls)
            elif tag == t.RvslInd:
                reversal = self._boolean(child, "Ntry/RvslInd")
            elif tag == t.AddtlNtryInf:
                info = (child.text or "").strip()
        amount, currency = self._amount(amount_element, "Ntry", line)
        sign = self._sign(indicator, element, "Ntry")
        signed = amount * sign if sign < 0 else amount
        self._entries += 1
        self._sum += signed
        if status == "BOOK":
            self._booked += signed
        else:
            self._pending += 1
        if not self._currency:
            self._currency = currency
        statement = self.index
        amounts = [
            None if d.amount is None or (d.currency or currency) != currency else d.amount * (d.sign or sign)
            for d in details
        ]
        # Split an entry into its transactions only when theirs add up to what the bank booked, each the
        # entry's way (credits of a credit): a detail claiming more than the entry, offset by a debit in
        # the same entry, would credit payments with money that never arrived.
        if (
            len(details) > 1
            and None not in amounts
            and sum(a for a in amounts if a is not None) == signed
            and all(a is not None and (a < 0) == (signed < 0) for a in amounts)
        ):
            return [
                Transaction(
                    amount, currency, booked, value_date, status,
                    _references(d.references, entry_refs), d.remittance or info, d.debtor,
                    d.debtor_account, reversal, statement, line,
                )
                for d, amount in zip(details, amounts, strict=True)
                if amount is not None
            ]  # fmt: skip
        references = _references([r for d in details for r in d.references], entry_refs)
        remittance = " ".join(d.remittance for d in details if d.remittance) or info
        first = details[0] if details else _NO_DETAIL
        return [
            Transaction(
                signed, currency, booked, value_date, status, references, remittance, first.debtor,
                first.debtor_account, reversal, statement, line,
            )
        ]  # fmt: skip

    def _detail(self, element: etree._Element) -> _Detail:  # noqa: PLR0912 (a branch per child)
        t = self.tags
        amount: Decimal | None = None
        currency = ""
        sign: int | None = None
        references: list[str] = []
        remittance: list[str] = []
        debtor = debtor_account = ""
        for child in element:
            tag = child.tag
            if tag == t.Refs:
                found = {ref.tag: ref.text for ref in child}
                references.extend(
                    (found.get(name) or "").strip()
                    for name in (t.EndToEndId, t.TxId, t.AcctSvcrRef, t.InstrId)
                )
            elif tag == t.Amt:
                amount, currency = self._amount(child, "TxDtls")
            elif tag == t.CdtDbtInd:
                sign = self._sign(child, element, "TxDtls")
            elif tag == t.AmtDtls and amount is None:
                # What reached the account (TxAmt) before what was instructed (InstdAmt): charges may
                # have been taken on the way, and ISO 20022 lists InstdAmt first.
                kinds = {kind.tag: kind for kind in child}
                chosen = kinds.get(t.TxAmt)
                if chosen is None:
                    chosen = kinds.get(t.InstdAmt)
                if chosen is not None:
                    for found_amount in chosen:
                        if found_amount.tag == t.Amt:
                            amount, currency = self._amount(found_amount, "TxDtls")
            elif tag == t.RltdPties:
                for party in child:
                    if party.tag == t.Dbtr:
                        debtor = _name(party, t)
                    elif party.tag == t.DbtrAcct:
                        debtor_account = _account(party, t)
            elif tag == t.RmtInf:
                for part in child:
                    if part.tag == t.Ustrd:
                        remittance.append((part.text or "").strip())
                    elif part.tag == t.Strd:
                        references.extend(
                            (found.text or "").strip() for found in part.iterfind(f"{t.CdtrRefInf}/{t.Ref}")
                        )
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

    def _date(self, element: etree._Element) -> date | None:
        text = _first_text(element)  # Dt or DtTm, whichever it holds
        if not text:
            return None
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            name = etree.QName(element).localname
            raise self._error(element, name, f"date {text[:40]!r} is not an ISO 8601 date") from None

    def _boolean(self, element: etree._Element, where: str) -> bool:
        """An xs:boolean: true or 1, false or 0; anything else is refused."""
        value = (element.text or "").strip()
        if value in ("true", "1"):
            return True
        if value in ("false", "0"):
            return False
        raise self._error(element, where, f"must be true, false, 1 or 0, found {value[:20]!r}")

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
    """An account's identifier: its IBAN, or its other identification (``Id/IBAN`` or ``Id/Othr/Id``)."""
    for ident in element:
        if ident.tag == t.Id:
            for choice in ident:
                if choice.tag == t.IBAN:
                    return (choice.text or "").strip()
                if choice.tag == t.Othr:
                    return _child_text(choice, t.Id)
    return ""


def _name(party: etree._Element, t: _Tags) -> str:
    """A party's name: ``Nm`` up to 001.07, ``Pty/Nm`` from 001.08."""
    for child in party:
        if child.tag == t.Nm:
            return (child.text or "").strip()
        if child.tag == t.Pty:
            return _child_text(child, t.Nm)
    return ""


def _child_text(element: etree._Element, tag: str) -> str:
    """The text of the element's first child named ``tag`` (``findtext`` without its path machinery,
    which cost 5 µs a call here)."""
    for child in element:
        if child.tag == tag:
            return (child.text or "").strip()
    return ""


def _first_text(element: etree._Element) -> str:
    """The text of the element's first child (a choice of one: ``Sts/Cd``, ``BookgDt/Dt``...)."""
    for child in element:
        return (child.text or "").strip()
    return ""


def _drop(element: etree._Element, tag: str) -> None:
    """Free a read element, and its read siblings of the same tag (not the statement's header)."""
    element.clear()
    previous = element.getprevious()
    while previous is not None and previous.tag == tag:
        parent = previous.getparent()
        assert parent is not None
        parent.remove(previous)
        previous = element.getprevious()
