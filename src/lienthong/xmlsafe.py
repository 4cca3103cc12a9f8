"""The one hardened XML parser configuration, for every place lienthong reads XML from outside (DESIGN §6).

Every entry point parses through here: SOAP answers (checked before zeep reads them, ``adapters.soap``), the
XML strings inside them (VNPT's look-ups), the sandbox's SOAP requests, bank statements (``bank.camt``,
streamed with ``iterparse``) and signed documents (``certs.xmldsig``). ``tests/test_xml_entry_points.py``
walks each one, and fails when a parse appears anywhere else in ``src/lienthong``.

What is refused, and how:

- **DTDs** (and so entities, internal or external): a document with a ``<!DOCTYPE`` is refused, whether or
  not libxml2 could read it. Nothing is loaded: no external DTD, no external entity, no network
  (``no_network``), entities never substituted (``resolve_entities=False``); libxml2's own guard against
  entity amplification stays on (``huge_tree=False``).
- **Processing instructions** are dropped unread (``remove_pis``): an ``<?xml-stylesheet?>`` at the head of
  a VNPT invoice is common and harmless once ignored.
- **Size**: more than ``XmlLimits.max_bytes`` is refused before any parsing.
- **Depth**: elements nested deeper than ``XmlLimits.max_depth`` are refused (libxml2 itself stops at 256).

Refusals raise ``XmlRefused`` (``what``: ``dtd``, ``size`` or ``depth``; ``source``; ``line``); XML that is
not well formed raises ``XmlMalformed``. Both are ``XmlError``, a ``LienthongError`` and a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, Any, Literal, cast

from lxml import etree

from lienthong.errors import LienthongError

Refusal = Literal["dtd", "size", "depth"]

OPTIONS: dict[str, bool] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_pis": True,
}
"""lxml's parser options, the same for a whole-document parse and for ``iterparse``."""

_PARSER = etree.XMLParser(**cast(Any, OPTIONS))
_DOCTYPES = tuple("<!DOCTYPE".encode(encoding) for encoding in ("utf-8", "utf-16-le", "utf-16-be"))


@dataclass(frozen=True)
class XmlLimits:
    """How much XML one entry point reads: ``max_bytes`` (default 1 MiB) and ``max_depth``, elements nested
    (default 64; a SOAP answer or an invoice nests about 10 deep, a WSDL with its schema about 20)."""

    max_bytes: int = 1_048_576
    max_depth: int = 64


DEFAULT_LIMITS = XmlLimits()


class XmlError(LienthongError, ValueError):
    """XML from ``source`` that lienthong does not read: ``problem`` says why, ``line`` where (0: unknown)."""

    def __init__(self, problem: str, *, source: str = "the XML", line: int = 0) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {problem}")


class XmlRefused(XmlError):
    """XML refused by the hardened configuration: ``what`` is ``dtd``, ``size`` or ``depth``."""

    def __init__(self, what: Refusal, problem: str, *, source: str = "the XML", line: int = 0) -> None:
        self.what = what
        super().__init__(problem, source=source, line=line)


class XmlMalformed(XmlError):
    """XML that is not well formed (libxml2's message in ``problem``)."""


def parse(
    data: bytes | str, *, source: str = "the XML", limits: XmlLimits = DEFAULT_LIMITS
) -> etree._Element:
    """The root element of ``data``, parsed with the hardened configuration and checked against ``limits``.
    A ``str`` is read as UTF-8. Raises XmlRefused or XmlMalformed, naming ``source``."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > limits.max_bytes:
        raise XmlRefused(
            "size", f"is {len(raw):,} bytes, more than the limit of {limits.max_bytes:,}", source=source
        )
    try:
        root = etree.fromstring(raw, _PARSER)
    except etree.XMLSyntaxError as exc:
        if any(mark in raw for mark in _DOCTYPES):  # a DTD libxml2 gave up on (an entity bomb)
            raise _dtd(source) from exc
        raise XmlMalformed(f"is not well-formed XML: {exc.msg}", source=source, line=exc.lineno or 0) from exc
    check_document(root, source=source)
    check_depth(root, limits.max_depth, source=source)
    return root


def check_document(element: etree._Element, *, source: str = "the XML") -> None:
    """Refuse the document ``element`` belongs to when it carries a DTD (lxml has read its prolog by then,
    also in the middle of an ``iterparse``)."""
    docinfo: Any = element.getroottree().docinfo  # lxml-stubs lack DocInfo.doctype
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise _dtd(source)


def check_depth(element: etree._Element, max_depth: int, *, source: str = "the XML", above: int = 0) -> None:
    """Refuse ``element``'s subtree when it nests more than ``max_depth`` elements, counting ``above``
    ancestors (for a subtree read from a stream). XPath evaluated in C: some 50 µs for 4000 elements."""
    allowed = max_depth - above
    if allowed < 1:
        raise _too_deep(element, max_depth, source)
    if _deeper_than(allowed)(element) is True:
        found = _first_deeper_than(allowed)(element)
        first = found[0] if isinstance(found, list) and found else element
        raise _too_deep(first if isinstance(first, etree._Element) else element, max_depth, source)


def iterparse(
    handle: IO[bytes], *, events: tuple[str, ...], tag: tuple[str, ...], source: str = "the XML"
) -> Iterator[tuple[str, etree._Element]]:
    """lxml's ``iterparse`` over ``handle`` with the hardened options, for files read as a stream (the
    caller caps their size). Raises XmlRefused for a DTD, XmlMalformed for XML that is not well formed."""
    context = etree.iterparse(handle, events=events, tag=tag, remove_comments=True, **cast(Any, OPTIONS))
    checked = False
    try:
        for event, element in context:
            if not checked:
                check_document(element, source=source)
                checked = True
            yield event, element
    except etree.XMLSyntaxError as exc:
        raise XmlMalformed(f"is not well-formed XML: {exc.msg}", source=source, line=exc.lineno or 0) from exc


@lru_cache(maxsize=16)
def _deeper_than(levels: int) -> etree.XPath:
    """Whether an element is more than ``levels`` below and including the context node (2.5 µs on a bank
    statement's entry: the cheapest form found)."""
    return etree.XPath("boolean(self::*" + "/*" * levels + ")")


@lru_cache(maxsize=16)
def _first_deeper_than(levels: int) -> etree.XPath:
    """The first such element, to name its line."""
    return etree.XPath("(self::*" + "/*" * levels + ")[1]")


def _dtd(source: str) -> XmlRefused:
    return XmlRefused(
        "dtd", "carries a DTD (<!DOCTYPE>), which is refused: no DTDs, no entities", source=source, line=1
    )


def _too_deep(element: etree._Element, max_depth: int, source: str) -> XmlRefused:
    line = int(getattr(element, "sourceline", 0) or 0)
    return XmlRefused("depth", f"nests elements deeper than {max_depth}", source=source, line=line)
