"""HTTP for REST adapters: an httpx transport, a base URL and a timeout, and nothing else of a client.

Adapters speak httpx (``httpx.Request``, ``httpx.Response``) through an injected
``httpx.AsyncBaseTransport``: ``make_transport`` builds the real one, tests may pass
``httpx.MockTransport``. Underneath, the transport is aiohttp's (package ``httpx-aiohttp``): against a
loopback peer with 32 in flight, httpx's default transport did about 250 requests/s and the aiohttp
transport about 2,000 (the issue's figures); ``benchmarks/bench_bus.py`` measures 340-460 deliveries/s
for a bare loop on the default transport (docs/decisions/0002-http-transport.md).

Adapters do not go through ``httpx.AsyncClient``: its cookie jar, auth and redirect flows and event hooks
are nothing a machine-to-machine adapter uses (each adapter does its own authentication), and they cost more
per request than the transport (measured: 3,400-4,200 requests/s through ``client.send`` against
5,400-6,100 through the same transport directly).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping

import httpx
from httpx_aiohttp import AiohttpTransport


def make_transport(
    *, max_connections: int, ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncBaseTransport:
    """The real transport for one destination; TLS is verified (``ssl_context``: a private CA, or mTLS)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    verify: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    return AiohttpTransport(verify=verify, limits=limits, trust_env=False)


class HttpPeer:
    """One external system over HTTP: where it is, how to reach it, how long to wait (``timeout_s``)."""

    def __init__(self, base_url: str, transport: httpx.AsyncBaseTransport, *, timeout_s: float) -> None:
        self.base_url = httpx.URL(base_url)
        self.transport = transport
        self.timeout_s = timeout_s

    def endpoint(self, path: str) -> Endpoint:
        return Endpoint(self, path)

    async def aclose(self) -> None:
        await self.transport.aclose()


class Endpoint:
    """One URL of a peer, parsed once (building requests from a parsed URL: 12 µs against 45 µs)."""

    def __init__(self, peer: HttpPeer, path: str) -> None:
        self.url = peer.base_url.join(path)
        self._transport = peer.transport
        self._timeout_s = peer.timeout_s
        # The transport applies these per socket operation; the whole exchange is bounded below.
        self._extensions = {"timeout": httpx.Timeout(peer.timeout_s).as_dict()}

    async def post(self, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        """POST ``body`` and read the whole answer, within ``timeout_s`` (raises TimeoutError past it)."""
        request = httpx.Request("POST", self.url, content=body, headers=headers, extensions=self._extensions)
        async with asyncio.timeout(self._timeout_s):
            response = await self._transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response
