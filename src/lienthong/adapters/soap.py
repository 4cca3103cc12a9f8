"""What every SOAP adapter shares: zeep's safe parser settings and the one boundary for its failures.

``soap_failure`` sorts any exception from zeep, httpx or aiohttp into *retry later* (the service is down,
slow, or answered something that is not its SOAP reply) or *refused* (a soap:Client fault, a 4xx: our
request is wrong), with a message. Each adapter turns those two into its own errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import aiohttp
import httpx
import zeep
import zeep.exceptions
from lxml import etree

from lienthong.adapters.base import exception_text
from lienthong.adapters.http import AnswerTooLarge
from lienthong.errors import LienthongError

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


Verdict = tuple[Literal["retry", "refused"], str, str | None]
"""(what to do, message, the remote's code if any)."""


def soap_failure(exc: BaseException) -> Verdict | None:
    """How to treat ``exc``, or None when it is not a transport or SOAP failure."""
    if isinstance(exc, zeep.exceptions.Fault):
        code = str(exc.code or "")
        if code.endswith("Client"):
            return "refused", f"the service refused the request: {exc.message}", code
        return "retry", f"the service failed: {exc.message}", code or None
    if isinstance(exc, zeep.exceptions.TransportError):
        status = exc.status_code
        if 200 <= status < 300:  # zeep's word for a 2xx whose body is not XML
            return "retry", f"the answer is not SOAP: {str(exc.message)[:160]}", None
        if status in (408, 429) or status >= 500:
            return "retry", f"the service answered http {status}", str(status)
        return "refused", f"the service answered http {status}", str(status)
    forbidden = (
        zeep.exceptions.DTDForbidden,
        zeep.exceptions.EntitiesForbidden,
        zeep.exceptions.ExternalReferenceForbidden,
    )
    if isinstance(exc, forbidden):
        name = type(exc).__name__
        return (
            "retry",
            f"the answer was refused: it carried a DTD, entities or external references: {name}",
            None,
        )
    if isinstance(exc, zeep.exceptions.XMLSyntaxError | zeep.exceptions.XMLParseError):
        return "retry", f"the answer is not SOAP: {exception_text(exc)[:200]}", None
    if isinstance(exc, zeep.exceptions.Error):
        return "retry", f"the answer does not match the WSDL: {exception_text(exc)}", None
    if isinstance(exc, AnswerTooLarge):
        return "retry", str(exc), None
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "retry", "the service did not answer in time", None
    if isinstance(exc, httpx.HTTPError | aiohttp.ClientError | OSError):
        return "retry", f"cannot reach the service: {exception_text(exc)}", None
    return None


@contextmanager
def map_soap_errors(
    retry: Callable[[str, str | None], Exception], refused: Callable[[str, str | None], Exception]
) -> Iterator[None]:
    """Raise ``retry(message, code)`` or ``refused(message, code)`` for every transport or SOAP failure;
    our own errors pass through."""
    try:
        yield
    except LienthongError:
        raise
    except Exception as exc:
        verdict = soap_failure(exc)
        if verdict is None:
            raise
        kind, message, code = verdict
        raise (retry if kind == "retry" else refused)(message, code) from exc
