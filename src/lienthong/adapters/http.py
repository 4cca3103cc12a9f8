"""HTTP for adapters: an aiohttp session behind one transport, a base URL and a timeout, and nothing else of
a client.

REST adapters post through ``Endpoint.post``, which answers an ``Answer`` (status, headers, body). On the
real transport (``make_transport``: ``AiohttpTransport``) that is aiohttp and nothing else: building an
``httpx.Request`` and ``httpx.Response`` around every exchange cost the adapters' path as much as the
exchange itself (measured in one run against the sandbox portal, 32 in flight: 2,600-3,500 requests/s
through httpx's objects over the same aiohttp session, 4,600-5,800 straight on aiohttp, bare aiohttp
4,400-5,600; docs/decisions/0002-http-transport.md).

The same transport is an ``httpx.AsyncBaseTransport`` too (package ``httpx-aiohttp`` underneath), for the
SOAP adapters' zeep clients and for tests, which may pass ``httpx.MockTransport`` to an ``HttpPeer``: an
endpoint over a transport that has no ``post`` of its own goes through httpx's objects.

Every answer is capped (``max_answer_bytes``, 8 MiB by default): a declared ``Content-Length`` over the cap
is refused before reading, and a body is dropped as soon as its decoded size passes the cap (aiohttp inflates
a compressed body in bounded steps, so a gzip bomb stops too; over httpx, ``read_capped`` does the same,
and refuses an answer whose codings are stacked, which httpx would inflate without bound).
A peer answering 24 MB took the node from 99 MB to 1 GB before the cap; the caller sees ``AnswerTooLarge``.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Protocol, runtime_checkable

import aiohttp
import httpx
import yarl
from httpx_aiohttp import AiohttpTransport as _HttpxOverAiohttp

from lienthong.adapters.exchanges import note

DEFAULT_MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""The default cap on one answer from a peer, in bytes (8 MiB): far above any answer a peer owes us."""


class AnswerTooLarge(httpx.TransportError):
    """A peer's answer passed ``max_bytes``; it was dropped unread and its connection closed."""

    max_bytes: int = 0

    @classmethod
    def over(cls, max_bytes: int, *, declared: int | None = None, what: str = "the answer") -> AnswerTooLarge:
        size = f" (it declares {declared:,} bytes)" if declared is not None else ""
        error = cls(f"{what} is larger than the limit of {max_bytes:,} bytes{size}; dropped unread")
        error.max_bytes = max_bytes
        return error

    @classmethod
    def inflatable(cls, max_bytes: int, codings: str, *, what: str = "the answer") -> AnswerTooLarge:
        """``what`` came in codings httpx would inflate a read of at once, past the cap before it is
        counted (stacked codings; any coding, for a WSDL asked for uncompressed): refused unread."""
        error = cls(
            f"{what} came with Content-Encoding {codings[:80]!r}, which could inflate past the limit of"
            f" {max_bytes:,} bytes before it is counted; dropped unread"
        )
        error.max_bytes = max_bytes
        return error


def stacked_codings(response: httpx.Response) -> str | None:
    """The answer's Content-Encoding when it stacks codings (``gzip, gzip``), else None. httpx inflates each
    read through every layer at once, with no bound: a 980-byte body came out as one 512 MiB piece before
    ``read_capped`` could count it. One coding inflates a read at most some thousand times (16 KiB reads
    over httpx-aiohttp: about 16 MiB), which the cap then stops."""
    value = response.headers.get("content-encoding", "")
    codings = [c for c in (part.strip().lower() for part in value.split(",")) if c and c != "identity"]
    return value if len(codings) > 1 else None


@dataclass(frozen=True, slots=True)
class Answer:
    """A peer's whole answer to one request: status, headers (case-insensitive) and decoded body."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        """The body as text, in the charset its content type names (UTF-8 when it names none or a bad one);
        bytes that do not decode are replaced, never raised on."""
        _, _, params = self.headers.get("content-type", "").partition(";")
        charset = "utf-8"
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            codecs.lookup(charset)
        except LookupError:
            charset = "utf-8"
        return self.content.decode(charset, errors="replace")


@runtime_checkable
class Sender(Protocol):
    """A transport that sends without httpx's objects: the real one, and the authentication around it."""

    async def send(
        self,
        method: str,
        url: yarl.URL,
        body: bytes,
        headers: Mapping[str, str],
        *,
        max_bytes: int,
        timeout_s: float,
    ) -> Answer:
        """Send ``body`` to ``url`` and read the whole answer, at most ``max_bytes`` of it, all within
        ``timeout_s`` (past it: TimeoutError)."""
        ...


def make_transport(
    *,
    max_connections: int,
    ssl_context: ssl.SSLContext | None = None,
    max_answer_bytes: int | None = None,
) -> AiohttpTransport:
    """The real transport for one destination; TLS is verified (``ssl_context``: a private CA, or mTLS).

    Answers larger than ``max_answer_bytes`` as received (None: 8 MiB) raise ``AnswerTooLarge``.
    """
    return AiohttpTransport(
        max_connections=max_connections,
        ssl_context=ssl_context,
        max_answer_bytes=max_answer_bytes or DEFAULT_MAX_ANSWER_BYTES,
    )


_CAP = "lienthong.max_answer_bytes"
"""The response extension through which a transport's cap reaches ``read_capped``."""
_DROP = "lienthong.drop_unread"
"""The response extension through which ``read_capped`` drops an answer it leaves unread (``_drop``)."""


class AiohttpTransport(_HttpxOverAiohttp):
    """One aiohttp session for one destination, used two ways: ``post`` (the adapters' path, no httpx
    objects) and ``handle_async_request`` (httpx's transport interface, for zeep and tests).

    Over httpx, the cap travels with the response for ``read_capped``, which every reader of such an
    answer's body uses. It is not enforced by wrapping each response's stream: with that layer the bus
    delivered 746-813/s (bus ÷ bare aiohttp 0.31), without it 1,064/s (0.44), in benchmarks/bench_bus.py on a
    noisy 2-core machine."""

    def __init__(
        self, *, max_connections: int, ssl_context: ssl.SSLContext | None, max_answer_bytes: int
    ) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        verify: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        super().__init__(verify=verify, limits=limits, trust_env=False)
        self.max_answer_bytes = max_answer_bytes
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _session(self) -> aiohttp.ClientSession:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()  # made on first use: it needs the running loop
        return self.client

    async def send(
        self,
        method: str,
        url: yarl.URL,
        body: bytes,
        headers: Mapping[str, str],
        *,
        max_bytes: int,
        timeout_s: float,
    ) -> Answer:
        """Send ``body`` (none for an empty one) and read the answer, inflated, up to the smaller of
        ``max_bytes`` and the transport's cap, within ``timeout_s`` from start to last byte.

        The bound is aiohttp's own (``ClientTimeout.total``: TimeoutError past it), not an
        ``asyncio.timeout`` around the call, which cost 7% of the bus's time on its own."""
        cap = min(max_bytes, self.max_answer_bytes)
        timeout = self._timeouts.get(timeout_s)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=timeout_s)
            self._timeouts[timeout_s] = timeout
        async with self._session().request(
            method, url, data=body or None, headers=headers, allow_redirects=False, timeout=timeout
        ) as answer:
            declared = answer.content_length
            if declared is not None and declared > cap:
                _drop(answer)  # the connection goes too: its unread body must not be read by the next
                raise AnswerTooLarge.over(cap, declared=declared)
            chunks: list[bytes] = []
            size = 0
            while chunk := await answer.content.readany():
                size += len(chunk)
                if size > cap:
                    chunks.clear()
                    _drop(answer)
                    raise AnswerTooLarge.over(cap)
                chunks.append(chunk)
            return Answer(answer.status, answer.headers, b"".join(chunks))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        # httpx-aiohttp keeps aiohttp's response in its stream, with no public way to it: how to drop an
        # answer left unread (``read_capped``).
        answer = getattr(response.stream, "_aiohttp_response", None)
        if isinstance(answer, aiohttp.ClientResponse):
            response.extensions[_DROP] = partial(_drop, answer)
        try:
            check_declared_length(response, self.max_answer_bytes)
        except AnswerTooLarge:
            drop_unread(response)
            await response.aclose()
            raise
        response.extensions[_CAP] = self.max_answer_bytes
        return response


def _drop(answer: aiohttp.ClientResponse) -> None:
    """Close an answer left unread, and let go of what aiohttp read ahead of it.

    aiohttp reads up to about 380 KB ahead of what the cap let through, and a dropped response ends in
    reference cycles that only the cyclic collector frees, which the node runs seldom
    (``serving.tune_runtime``). Look-ups of a peer answering 24 MB, each dropped at the 256 KiB cap, kept
    that much each: ``benchmarks/bench_hostile.py``'s look-ups alone took the node from 177 to 405-465 MB
    in 3 s, and 189-192 MB once dropped answers let go (session 12)."""
    connection = answer.connection
    transport = connection.transport if connection is not None else None
    if transport is not None:
        # A precaution, not measured to matter: a peer still sending is cut off now, not at its end
        # (MagicStack/uvloop#471 reports closed connections that go on reading).
        transport.abort()
    with contextlib.suppress(Exception):  # an answer already failed or closed holds nothing to drop
        answer.content.read_nowait()
    answer.close()
    # Emptying the stream lets aiohttp resume reading, which hands it what its parser still held (up to
    # about 210 KB), and a closed stream cannot be read: its buffer is emptied directly, where aiohttp
    # keeps one (``_size`` is left as it was; nothing reads a closed stream).
    buffer = getattr(answer.content, "_buffer", None)
    if isinstance(buffer, collections.deque):
        buffer.clear()


def drop_unread(response: httpx.Response) -> None:
    """``_drop`` for an httpx ``response`` over this transport whose body is left unread."""
    drop = response.extensions.get(_DROP)
    if callable(drop):
        drop()


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
    try:
        check_declared_length(response, max_bytes)
        stacked = stacked_codings(response)
        if stacked is not None:
            raise AnswerTooLarge.inflatable(max_bytes, stacked)
    except AnswerTooLarge:
        drop_unread(response)
        raise
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            chunks.clear()  # a traceback keeps this frame, and the frame its chunks
            drop_unread(response)
            raise AnswerTooLarge.over(max_bytes)
        chunks.append(chunk)
    # What aread() leaves behind, so that .content and .text work as after it.
    response._content = b"".join(chunks)
    return response._content


async def send_over_httpx(
    transport: httpx.AsyncBaseTransport,
    method: str,
    url: yarl.URL,
    body: bytes,
    headers: Mapping[str, str],
    *,
    max_bytes: int,
    timeout_s: float,
) -> Answer:
    """``Sender.send`` for a transport that only speaks httpx (``httpx.MockTransport`` in tests)."""
    extensions = {"timeout": httpx.Timeout(timeout_s).as_dict()}
    request = httpx.Request(method, str(url), content=body, headers=headers, extensions=extensions)
    response = await transport.handle_async_request(request)
    try:
        content = await read_capped(response, max_bytes)
    finally:
        await response.aclose()
    return Answer(response.status_code, response.headers, content)


async def send_over(
    transport: httpx.AsyncBaseTransport,
    method: str,
    url: yarl.URL,
    body: bytes,
    headers: Mapping[str, str],
    *,
    max_bytes: int,
    timeout_s: float,
) -> Answer:
    """Send through ``transport``: its own ``send`` when it has one, httpx's objects otherwise."""
    if isinstance(transport, Sender):
        return await transport.send(method, url, body, headers, max_bytes=max_bytes, timeout_s=timeout_s)
    return await send_over_httpx(
        transport, method, url, body, headers, max_bytes=max_bytes, timeout_s=timeout_s
    )


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
    """One URL of a peer, parsed once."""

    def __init__(self, peer: HttpPeer, path: str) -> None:
        self.url = peer.base_url.join(path)
        self._url = yarl.URL(str(self.url), encoded=True)
        self._transport = peer.transport
        self._sender = peer.transport if isinstance(peer.transport, Sender) else None
        self._timeout_s = peer.timeout_s
        self._max_answer_bytes = peer.max_answer_bytes

    async def post(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        """POST ``body`` and read the whole answer, within ``timeout_s`` (raises TimeoutError past it) and
        ``max_answer_bytes`` (raises AnswerTooLarge past it)."""
        return await self._send("POST", self._url, body, headers)

    async def get(self, query: Mapping[str, str], headers: Mapping[str, str]) -> Answer:
        """GET this URL with ``query`` added to its own, as ``post`` reads the answer."""
        return await self._send("GET", self._url.update_query(query), b"", headers)

    async def _send(self, method: str, url: yarl.URL, body: bytes, headers: Mapping[str, str]) -> Answer:
        answer = await self._exchange(method, url, body, headers)
        note(body, answer.content)  # the message log's hashes of this attempt's exchange
        return answer

    async def _exchange(self, method: str, url: yarl.URL, body: bytes, headers: Mapping[str, str]) -> Answer:
        if self._sender is not None:  # it bounds the whole exchange itself
            return await self._sender.send(
                method, url, body, headers, max_bytes=self._max_answer_bytes, timeout_s=self._timeout_s
            )
        async with asyncio.timeout(self._timeout_s):
            return await send_over_httpx(
                self._transport,
                method,
                url,
                body,
                headers,
                max_bytes=self._max_answer_bytes,
                timeout_s=self._timeout_s,
            )
