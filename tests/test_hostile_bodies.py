"""Many large bodies at once: the bytes of bodies in flight are bounded (503 past it), oversized batches are
refused before their events are validated, and a client that leaves mid-body is no server error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.types import Receive, Scope, Send

from conftest import AUTH, Peers, RunNode, config_dict
from lienthong.api.limits import BodySizeLimit
from lienthong.app import build
from lienthong.bus.envelope import parse_body
from lienthong.config import Config
from lienthong.errors import InvalidEvent
from lienthong.request_limits import RequestLimits
from lienthong.serving import HttpServer

KiB = 1024


@dataclass
class Holding:
    """Reads the whole body, then answers 200 only once ``release`` is set."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    reading: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.reading += 1
        while (await receive()).get("more_body"):
            pass
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def held() -> AsyncIterator[tuple[Holding, httpx.AsyncClient]]:
    app = Holding()
    server = HttpServer(BodySizeLimit(app, max_bytes=100 * KiB, max_total_bytes=150 * KiB), lifespan="off")
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield app, client
    app.release.set()
    await server.stop()


async def started(app: Holding, count: int) -> None:
    while app.reading < count:
        await asyncio.sleep(0.01)


async def test_a_body_past_the_bytes_in_flight_gets_503_with_retry_after(
    held: tuple[Holding, httpx.AsyncClient],
) -> None:
    app, client = held
    first = asyncio.create_task(client.post("/", content=b"a" * 100 * KiB))
    await started(app, 1)
    refused = await client.post("/", content=b"b" * 100 * KiB)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    error = refused.json()["error"]
    assert error["code"] == "server_busy"
    assert "153,600 bytes" in error["message"]
    assert app.reading == 1  # refused before the app saw it
    small = asyncio.create_task(client.post("/", content=b"c" * 40 * KiB))  # fits beside the first
    await started(app, 2)
    app.release.set()
    assert (await first).status_code == 200
    assert (await small).status_code == 200
    assert (await client.post("/", content=b"d" * 100 * KiB)).status_code == 200  # released


async def test_a_streamed_body_without_a_length_is_counted_as_it_arrives(
    held: tuple[Holding, httpx.AsyncClient],
) -> None:
    app, client = held
    first = asyncio.create_task(client.post("/", content=b"a" * 100 * KiB))
    await started(app, 1)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"s" * 10 * KiB

    refused = await client.post("/", content=chunks())
    assert refused.status_code == 503
    app.release.set()
    assert (await first).status_code == 200


def test_a_batch_over_the_limit_is_refused_before_its_events_are_validated() -> None:
    # 30,000 invalid events: today each is validated (and the first invalid one named) before the count.
    body = orjson.dumps({"events": [{"not": "an event"}] * 30_000})
    with pytest.raises(InvalidEvent) as caught:
        parse_body(body, dossier_code_field="code", max_events=1000)
    assert caught.value.path == "events"
    assert caught.value.message == "a batch holds at most 1000 events, this one has 30000"


async def test_an_oversized_batch_is_answered_422_naming_the_count(run_node: RunNode) -> None:
    node = await run_node(server={"max_batch_events": 10})
    events = [{"event_id": f"e{n}"} for n in range(11)]
    response = await node.post({"events": events})
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "invalid_event",
        "message": "a batch holds at most 10 events, this one has 11",
        "path": "events",
    }


@contextlib.contextmanager
def uvicorn_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture what uvicorn logs as errors: its loggers do not propagate to the root, where caplog listens,
    and building a server's config resets their handlers, so this goes after it."""
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(caplog.handler)
    try:
        yield
    finally:
        logger.removeHandler(caplog.handler)


async def test_a_client_leaving_mid_body_is_no_server_error(
    tmp_path: Path, peers: Peers, caplog: pytest.LogCaptureFixture
) -> None:
    node = build(Config.model_validate(config_dict(tmp_path, peers)))
    server = HttpServer(node.api, lifespan="on", limits=RequestLimits(body_timeout_s=0.3))
    await server.start()
    try:
        with uvicorn_errors(caplog):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            token = AUTH["authorization"].encode()
            writer.write(b"POST /v1/events HTTP/1.1\r\nhost: a\r\nauthorization: " + token)
            writer.write(b"\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{")
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # cut, unanswered
            writer.close()
            await asyncio.sleep(0.2)
    finally:
        await server.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
