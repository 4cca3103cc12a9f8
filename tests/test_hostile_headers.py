"""Hostile request heads on a real server: huge or countless headers get 431, slow heads and bodies are cut.

The requests are written on raw sockets (asyncio streams), byte by byte where it matters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson
import pytest
from starlette.types import Receive, Scope, Send

from lienthong.config import ServerConfig
from lienthong.request_limits import RequestLimits
from lienthong.serving import HttpServer

FAST = RequestLimits(header_timeout_s=0.5, body_timeout_s=0.5)


@dataclass
class Echo:
    """Answers 200 with the size of the body it read; notes each request it saw and each disconnect."""

    seen: list[str] = field(default_factory=list)
    disconnects: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.seen.append(scope["path"])
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = str(size).encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@dataclass
class Served:
    app: Echo
    server: HttpServer

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.server.port)


async def serve(limits: RequestLimits | None = None) -> AsyncIterator[Served]:
    app = Echo()
    server = HttpServer(app, lifespan="off", limits=limits)
    await server.start()
    yield Served(app, server)
    await server.stop()


@pytest.fixture
async def default() -> AsyncIterator[Served]:
    async for served in serve():
        yield served


@pytest.fixture
async def fast() -> AsyncIterator[Served]:
    async for served in serve(FAST):
        yield served


async def answer(reader: asyncio.StreamReader, timeout_s: float = 5) -> tuple[int, bytes]:
    """The status and body of the next answer; (0, b"") when the server closed without one."""
    try:
        raw = await asyncio.wait_for(reader.read(), timeout_s)
    except ConnectionError:  # a reset, or the pipe broken under a write of ours
        return 0, b""
    if not raw:
        return 0, b""
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def write(writer: asyncio.StreamWriter, data: bytes) -> bool:
    """Write ``data``; False when the server has closed the connection meanwhile."""
    try:
        writer.write(data)
        await writer.drain()
    except ConnectionError:
        return False
    return True


async def test_a_request_with_a_header_over_the_limit_is_answered_431(default: Served) -> None:
    reader, writer = await default.connect()
    await write(writer, b"GET /x HTTP/1.1\r\nhost: a\r\nx-big: " + b"a" * 64 * 1024 + b"\r\n\r\n")
    status, body = await answer(reader)
    assert status == 431
    error = orjson.loads(body)["error"]
    assert error["code"] == "headers_too_large"
    assert "16,384 bytes" in error["message"]
    assert default.app.seen == []
    writer.close()


async def test_a_header_that_never_ends_is_cut_at_the_limit_not_read_to_its_end(default: Served) -> None:
    # The attack: one 100 MB header. The server must stop reading it long before its end.
    reader, writer = await default.connect()
    await write(writer, b"GET /x HTTP/1.1\r\nhost: a\r\nx-big: ")
    sent = 0
    while sent < 100 * 1024 * 1024 and await write(writer, b"a" * 64 * 1024):
        sent += 64 * 1024
    assert sent < 16 * 1024 * 1024
    status, _ = await answer(reader)
    assert status in (0, 431)  # a reset may overtake the 431 while we are still writing
    assert default.app.seen == []
    writer.close()


async def test_a_request_with_too_many_headers_is_answered_431(default: Served) -> None:
    reader, writer = await default.connect()
    headers = b"".join(b"x-h%d: v\r\n" % n for n in range(101))
    await write(writer, b"GET /x HTTP/1.1\r\nhost: a\r\n" + headers + b"\r\n")
    status, body = await answer(reader)
    assert status == 431
    assert "100 headers" in orjson.loads(body)["error"]["message"]
    assert default.app.seen == []
    writer.close()


async def test_a_request_within_the_limits_is_served_and_the_connection_kept(default: Served) -> None:
    reader, writer = await default.connect()
    headers = b"".join(b"x-h%d: %s\r\n" % (n, b"v" * 100) for n in range(90))
    for _ in range(2):
        await write(writer, b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n" + headers + b"\r\nabc")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(1) == b"3"
    assert default.app.seen == ["/x", "/x"]
    writer.close()


async def test_a_head_sent_too_slowly_is_answered_408_and_closed(fast: Served) -> None:
    reader, writer = await fast.connect()
    started = time.monotonic()
    await write(writer, b"POST /v1/events HTTP/1.1\r\nhost: a\r\n")
    for _ in range(10):
        if not await write(writer, b"x-a: b\r\n"):
            break
        await asyncio.sleep(0.1)
    status, body = await answer(reader)
    assert status == 408
    assert orjson.loads(body)["error"]["code"] == "request_timeout"
    assert 0.4 < time.monotonic() - started < 2
    assert fast.app.seen == []
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed_after_the_head_timeout(fast: Served) -> None:
    reader, writer = await fast.connect()
    started = time.monotonic()
    assert (await answer(reader))[0] == 408
    assert time.monotonic() - started < 2
    writer.close()


async def test_many_half_sent_requests_are_all_closed_after_the_head_timeout(fast: Served) -> None:
    async def half_sent() -> tuple[int, float]:
        reader, writer = await fast.connect()
        started = time.monotonic()
        await write(writer, b"GET /x HTTP/1.1\r\nhost: a\r\n")
        status, _ = await answer(reader)
        writer.close()
        return status, time.monotonic() - started

    answers = await asyncio.gather(*(half_sent() for _ in range(200)))
    assert {status for status, _ in answers} == {408}
    assert max(elapsed for _, elapsed in answers) < 3


async def test_a_body_sent_too_slowly_is_cut_and_the_app_sees_a_disconnect(fast: Served) -> None:
    reader, writer = await fast.connect()
    await write(writer, b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\n")
    started = time.monotonic()
    for _ in range(20):
        if not await write(writer, b"x"):
            break
        await asyncio.sleep(0.1)
    assert (await answer(reader))[0] == 0
    assert time.monotonic() - started < 2.5
    await asyncio.sleep(0.1)
    assert fast.app.disconnects == 1
    writer.close()


async def test_the_idle_time_between_requests_is_not_counted_against_the_next_head(fast: Served) -> None:
    reader, writer = await fast.connect()
    for _ in range(2):
        await write(writer, b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        await reader.readexactly(1)
        await asyncio.sleep(0.8)  # longer than the head timeout, shorter than keep-alive
    writer.close()


def test_the_limits_are_server_config_values_with_defaults() -> None:
    server = ServerConfig()
    assert (server.max_header_bytes, server.max_headers) == (16 * 1024, 100)
    assert (server.header_timeout_s, server.body_timeout_s) == (10.0, 60.0)
    limits = RequestLimits()
    assert (limits.max_header_bytes, limits.max_headers) == (server.max_header_bytes, server.max_headers)
    assert (limits.header_timeout_s, limits.body_timeout_s) == (
        server.header_timeout_s,
        server.body_timeout_s,
    )
