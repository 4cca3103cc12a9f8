"""What every SOAP adapter shares: zeep's safe parser settings and the boundary for its failures.

``map_soap_errors`` sorts any exception from zeep, httpx or aiohttp into *retry later* (the service is down,
slow, or answered something that is not its SOAP reply) or *refused* (a soap:Client fault, a 4xx: our
request is wrong), as ``failures.classify`` says for every transport. Each adapter turns those two into
its own errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import zeep
import zeep.exceptions
from lxml import etree

from lienthong import xmlsafe
from lienthong.adapters.failures import Failure, classify
from lienthong.errors import DeliveryError, LienthongError
from lienthong.xmlsafe import XmlLimits, XmlMalformed, XmlRefused

# DESIGN §6: no DTDs, no entities, no external references, no huge trees. zeep builds its own parser from
# these (it takes no parser); the transports check every answer with ``check_answer`` before zeep reads it.
SAFE = zeep.Settings(
    strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True, xml_huge_tree=False
)

MAX_INNER_XML = 1_048_576
"""Bytes of XML carried inside a SOAP string result (VNPT's look-ups) that ``safe_xml`` reads."""

UnsafeXml = XmlRefused
"""The name SOAP adapters knew ``xmlsafe.XmlRefused`` by."""


def safe_xml(
    text: str | bytes, *, max_bytes: int = MAX_INNER_XML, source: str = "the answer"
) -> etree._Element:
    """Parse XML that came from outside with ``xmlsafe``'s one configuration, at most ``max_bytes``.
    Raises XmlRefused (UnsafeXml) or XmlMalformed."""
    return xmlsafe.parse(text, source=source, limits=XmlLimits(max_bytes=max_bytes))


def check_answer(content: bytes, *, source: str = "the SOAP answer") -> None:
    """Refuse a SOAP answer (or a WSDL) ``xmlsafe`` refuses, before zeep parses it, as the zeep error
    ``failures.classify`` reads as an answer to retry later: ``DTDForbidden`` for a DTD, ``XMLParseError``
    with our reason for the depth. (The transport caps the size as it reads.)"""
    try:
        xmlsafe.parse(content, source=source, limits=XmlLimits(max_bytes=max(len(content), 1)))
    except XmlRefused as exc:
        if exc.what == "dtd":
            raise zeep.exceptions.DTDForbidden(source, None, None) from exc
        raise zeep.exceptions.XMLParseError(str(exc)) from exc
    except XmlMalformed:
        return  # zeep says so in its own words, as before


@contextmanager
def map_soap_errors(
    retry: Callable[[Failure], Exception], refused: Callable[[Failure], Exception]
) -> Iterator[None]:
    """Raise ``retry(failure)`` or ``refused(failure)`` for every transport or SOAP failure, as
    ``failures.classify`` judges it. A RetryableError or PermanentError from below (the destination's
    OAuth2 token endpoint, inside its transport) is such a failure too; our other errors pass through."""
    try:
        yield
    except Exception as exc:
        ours = isinstance(exc, LienthongError) and not isinstance(exc, DeliveryError)
        failure = None if ours else classify(exc)
        if failure is None:
            raise
        raise (retry if failure.retryable else refused)(failure) from exc
