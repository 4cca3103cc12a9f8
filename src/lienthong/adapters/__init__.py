"""Adapters: each translates claimed deliveries into one external system's protocol."""

from lienthong.adapters.base import (
    Adapter,
    Receipt,
    map_transport_errors,
    parse_retry_after,
    raise_for_status,
)
from lienthong.adapters.emc import EmcAdapter
from lienthong.adapters.http import make_client
from lienthong.adapters.portal import PortalAdapter, PortalCredentials

__all__ = [
    "Adapter",
    "EmcAdapter",
    "PortalAdapter",
    "PortalCredentials",
    "Receipt",
    "make_client",
    "map_transport_errors",
    "parse_retry_after",
    "raise_for_status",
]
