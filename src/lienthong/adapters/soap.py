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
from lxml import etree

from lienthong.adapters.failures import Failure, classify
from lienthong.errors import DeliveryError, LienthongError

# DESIGN §6: no DTDs, no entities, no external references, no huge trees.
SAFE = zeep.Settings(
    strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True, xml_huge_tree=False
)

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_pis=True
)
MAX_INNER_XML = 1_048_576
"""Characters of XML carried inside a SOAP string result (VNPT's look-ups) that ``safe_xml`` reads."""


class UnsafeXml(ValueError):
    """XML that is refused unread: a DTD (and so entities), or too large."""


def safe_xml(text: str | bytes, *, max_chars: int = MAX_INNER_XML) -> etree._Element:
    """Parse XML that came from outside, as DESIGN §6 asks of every parser: no DTD, no entities, no
    network, a bounded size. Raises UnsafeXml, or lxml's XMLSyntaxError for XML that is not well formed."""
    if len(text) > max_chars:
        raise UnsafeXml(f"the XML is larger than {max_chars} characters")
    # The whole text, not its head: a DTD may follow a long comment or processing instruction.
    lowered = text.lower() if isinstance(text, str) else text.lower().decode("latin-1")
    if "<!doctype" in lowered or "<!entity" in lowered:
        raise UnsafeXml("the XML carries a DTD or entities")
    root = etree.fromstring(text.encode("utf-8") if isinstance(text, str) else text, _PARSER)
    if getattr(root.getroottree().docinfo, "doctype", ""):
        raise UnsafeXml("the XML carries a DTD")
    return root


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
