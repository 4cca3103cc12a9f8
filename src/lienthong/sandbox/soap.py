"""What SOAP sandbox peers share: a safe XML parser, envelopes, faults and SOAP's malformed answers."""

from __future__ import annotations

import random
from typing import Any

from lxml import etree

from lienthong import xmlsafe
from lienthong.sandbox.base import Answer
from lienthong.xmlsafe import XmlError, XmlLimits

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XML = b"text/xml; charset=utf-8"
MAX_REQUEST = 4 * 1_048_576
"""The largest SOAP request a sandbox peer reads, in bytes (a batch of invoices in ``xmlInvData``)."""


class SoapRequestError(Exception):
    """The request is not a SOAP envelope we accept: answered with a soap:Client fault."""


def parse_body(body: bytes) -> etree._Element:
    """The first element inside the envelope's Body."""
    try:  # DESIGN §6's one configuration: no DTDs, no entities, no network, capped size and depth
        root = xmlsafe.parse(body, source="the request", limits=XmlLimits(max_bytes=MAX_REQUEST))
    except XmlError as exc:
        raise SoapRequestError(str(exc)) from exc
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise SoapRequestError("not a SOAP 1.1 envelope")
    body_el = root.find(f"{{{SOAP_ENV}}}Body")
    if body_el is None or len(body_el) == 0:
        raise SoapRequestError("the envelope has no Body content")
    return body_el[0]


def fields(element: etree._Element) -> dict[str, str]:
    """Child elements by local name, with their text."""
    return {etree.QName(child).localname: (child.text or "") for child in element}


def envelope(content: etree._Element) -> bytes:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    etree.SubElement(env, f"{{{SOAP_ENV}}}Body").append(content)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def fault(code: str, message: str, status: int = 500) -> Answer:
    """A SOAP 1.1 fault: ``code`` is ``Client`` (the request is wrong) or ``Server`` (try again later)."""
    element = etree.Element(f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(element, "faultcode").text = f"soap:{code}"
    etree.SubElement(element, "faultstring").text = message
    return Answer(status, envelope(element), XML)


def malformed(rng: random.Random, sample: bytes) -> Answer:
    """One of the ways a SOAP answer arrives broken: cut short, with the wrong content type, or HTML."""
    choice = rng.choice(("truncated", "content_type", "html"))
    if choice == "truncated":
        return Answer(200, sample[: len(sample) // 2], XML)
    if choice == "content_type":
        return Answer(200, b"OK", b"text/plain")
    return Answer(200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", b"text/html")


def element(tag: str, namespace: str, values: dict[str, Any]) -> etree._Element:
    """``<tag>`` with a child per key, nested for dicts; None values are left out."""
    node = etree.Element(f"{{{namespace}}}{tag}")
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict):
            node.append(element(key, namespace, value))
        else:
            etree.SubElement(node, f"{{{namespace}}}{key}").text = str(value)
    return node
