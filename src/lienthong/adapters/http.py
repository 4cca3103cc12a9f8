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

Every answer is capped (``max_answer_bytes``, 8 MiB by default): a declared ``Content-Length`` over the cap
is refused before reading (``make_transport``), and a streamed answer is dropped as soon as its decoded
size passes the cap (``read_capped``, which every reader of a body uses, so a gzip bomb stops too). A
peer answering 24 MB took the node from 99 MB to 1 GB before the cap; the caller sees ``AnswerTooLarge``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping

import httpx
from httpx_aiohttp import AiohttpTransport

DEFAULT_MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""The default cap on one answer from a peer, in bytes (8 MiB): far above any answer a peer owes us."""


class AnswerTooLarge(httpx.TransportError):
    """A peer's answer passed ``max_bytes``; it was dropped unread and its connection closed."""

    max_bytes: int = 0

    @classmethod
    def over(cls, max_bytes: int, *, declared: int | None = None) -> AnswerTooLarge:
        size = f" (it declares {declared:,} bytes)" if declared is not None else ""
        error = cls(f"the answer is larger than the limit of {max_bytes:,} bytes{size}; dropped unread")
        error.max_bytes = max_bytes
        return error


def make_transport(
    *,
    max_connections: int,
    ssl_context: ssl.SSLContext | None = None,
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
) -> httpx.AsyncBaseTransport:
    """The real transport for one destination; TLS is verified (``ssl_context``: a private CA, or mTLS).

    Answers larger than ``max_answer_bytes`` as received (default 8 MiB) raise ``AnswerTooLarge``.
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    verify: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    inner = AiohttpTransport(verify=verify, limits=limits, trust_env=False)
    return CappedTransport(inner, max_answer_bytes=max_answer_bytes)


_CAP = "lienthong.max_answer_bytes"
"""The response extension through which a transport's cap reaches ``read_capped``."""


class CappedTransport(httpx.AsyncBaseTransport):
    """Wraps a transport so that no answer's body passes ``max_answer_bytes``: a declared length over it is
    refused here, and the cap travels with the response for ``read_capped``, which every reader of an
    answer's body uses, to stop a streamed one at it.

    The cap is not enforced by wrapping each response's stream: with that layer the bus delivered
    746-813/s (bus ÷ bare aiohttp 0.31), without the transport wrapper at all 1,064/s (0.44), and with
    this one 814-1,205/s (0.31-0.36), in benchmarks/bench_bus.py on a noisy 2-core machine."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, max_answer_bytes: int) -> None:
        self._inner = inner
        self.max_answer_bytes = max_answer_bytes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        try:
            check_declared_length(response, self.max_answer_bytes)
        except AnswerTooLarge:
            await response.aclose()
            raise
        response.extensions[_CAP] = self.max_answer_bytes
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def check_declared_length(response: httpx.Response, max_bytes: int) -> None:
    """Raise AnswerTooLarge when the answer's ``Content-Length`` is over ``max_bytes``."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise AnswerTooLarge.over(max_bytes, declared=int(declared))


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """Read ``response``'s body, decoded, as ``response.aread()`` does, but raise AnswerTooLarge (and stop
    reading) once it passes ``max_bytes``, or the smaller cap of the transport that answered. The caller
    closes the response."""
    max_bytes = min(max_bytes, response.extensions.get(_CAP, max_bytes))
    check_declared_length(response, max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise AnswerTooLarge.over(max_bytes)
        chunks.append(chunk)
    # What aread() leaves behind, so that .content and .text work as after it.
    response._content = b"".join(chunks)
    return response._content


class HttpPeer:
    """One external system over HTTP: where it is, how to reach it, how long to wait (``timeout_s``), and
    the most it may answer (``max_answer_bytes``, decoded; default 8 MiB)."""

    def __init__(
        self,
        base_url: str,
        transport: httpx.AsyncBaseTransport,
        *,
        timeout_s: float,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self.base_url = httpx.URL(base_url)
        self.transport = transport
        self.timeout_s = timeout_s
        self.max_answer_bytes = max_answer_bytes

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
        self._max_answer_bytes = peer.max_answer_bytes
        # The transport applies these per socket operation; the whole exchange is bounded below.
        self._extensions = {"timeout": httpx.Timeout(peer.timeout_s).as_dict()}

    async def post(self, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        """POST ``body`` and read the whole answer, within ``timeout_s`` (raises TimeoutError past it) and
        ``max_answer_bytes`` (raises AnswerTooLarge past it)."""
        request = httpx.Request("POST", self.url, content=body, headers=headers, extensions=self._extensions)
        async with asyncio.timeout(self._timeout_s):
            response = await self._transport.handle_async_request(request)
            try:
                await read_capped(response, self._max_answer_bytes)
            finally:
                await response.aclose()
        return response
