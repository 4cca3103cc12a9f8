"""Adapters: each translates claimed deliveries into one external system's protocol."""

from lienthong.adapters.base import Adapter, Receipt, map_transport_errors, raise_for_status
from lienthong.adapters.emc import EmcAdapter
from lienthong.adapters.failures import parse_retry_after
from lienthong.adapters.http import Endpoint, HttpPeer, make_transport
from lienthong.adapters.portal import PortalAdapter, PortalCredentials

__all__ = [
    "Adapter",
    "EmcAdapter",
    "Endpoint",
    "HttpPeer",
    "PortalAdapter",
    "PortalCredentials",
    "Receipt",
    "make_transport",
    "map_transport_errors",
    "parse_retry_after",
    "raise_for_status",
]
