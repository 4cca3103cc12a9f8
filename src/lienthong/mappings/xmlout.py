"""Writing a mapping's output as XML (``output: xml``), e.g. the tax authority's invoice layout.

Keys become child elements in order; a key starting with ``@`` becomes an attribute; a list repeats its
key's element once per item; null leaves the element out. Numbers are written without exponents, booleans
as ``true``/``false``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from lxml import etree


def to_xml(root: str, document: dict[str, Any]) -> bytes:
    element = etree.Element(root)
    _fill(element, document)
    return bytes(etree.tostring(element, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _fill(element: etree._Element, value: Any) -> None:
    if not isinstance(value, dict):
        element.text = _text(value)
        return
    for key, child in value.items():
        if child is None:
            continue
        if key.startswith("@"):
            element.set(key[1:], _text(child))
        elif isinstance(child, list):
            for item in child:
                _fill(etree.SubElement(element, key), item)
        else:
            _fill(etree.SubElement(element, key), child)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
