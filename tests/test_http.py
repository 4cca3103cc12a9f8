"""The adapters' HTTP path: ``Endpoint.post`` straight on aiohttp, the same answer through httpx's objects,
and authentication around both, against a real loopback server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import httpx
import pytest
from multidict import CIMultiDict

from lienthong.adapters.auth import AuthenticatedTransport, StaticBearer
from lienthong.adapters.http import Answer, HttpPeer, Sender, make_transport, send_over_httpx
from lienthong.serving import ThreadedServer


class Echo:
    """Answers every POST with its body, the headers it got in ``seen``, and 401 to the tokens in
    ``refused``. The answer is Latin-1 text, as a gateway's error page may be."""

    def __init__(self) -> None:
        self.seen: list[list[tuple[str, str]]] = []
        self.requests: list[tuple[str, str, bytes]] = []  # method, path?query, body
        self.refused: set[str] = set()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"]]
        query = scope["query_string"].decode()
        self.requests.append((scope["method"], scope["path"] + (f"?{query}" if query else ""), body))
        self.seen.append(headers)
        tokens = [v.removeprefix("Bearer ") for k, v in headers if k == "authorization"]
        status = 401 if any(token in self.refused for token in tokens) else 200
        kind = b"text/plain; charset=iso-8859-1"
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", kind)]})
        await send({"type": "http.response.body", "body": body + " café".encode("latin-1")})


@pytest.fixture
def echo() -> Iterator[tuple[Echo, str]]:
    app = Echo()
    with ThreadedServer(lambda: app) as server:
        yield app, server.url


def test_an_answer_reads_as_text_in_its_declared_charset_and_never_raises() -> None:
    def text(content: bytes, kind: str | None) -> str:
        headers = CIMultiDict({"Content-Type": kind} if kind is not None else {})
        return Answer(200, headers, content).text

    assert text("đã nhận".encode(), "application/json") == "đã nhận"  # no charset: UTF-8
    assert text("café".encode("latin-1"), 'text/html; charset="ISO-8859-1"') == "café"
    assert text(b"caf\xe9", "text/plain; charset=no-such-charset") == "caf\ufffd"  # unknown: UTF-8
    assert text(b"\xff\xfe", None) == "\ufffd\ufffd"  # undecodable bytes are replaced


async def test_the_direct_path_and_httpx_objects_give_the_same_answer(echo: tuple[Echo, str]) -> None:
    _, url = echo
    transport = make_transport(max_connections=2)
    assert isinstance(transport, Sender)  # adapters on the real transport take the direct path
    endpoint = HttpPeer(url, transport, timeout_s=5).endpoint("/api/service")
    try:
        direct = await endpoint.post(b'{"a": 1}', {"content-type": "application/json"})
        via_httpx = await send_over_httpx(
            transport,
            "POST",
            endpoint._url,
            b'{"a": 1}',
            {"content-type": "application/json"},
            max_bytes=1024,
            timeout_s=5,
        )
    finally:
        await transport.aclose()
    assert (direct.status_code, direct.content) == (via_httpx.status_code, via_httpx.content)
    assert direct.content.startswith(b'{"a": 1}')
    assert direct.headers["Content-Type"] == via_httpx.headers["content-type"]
    assert direct.text.endswith(" café")
    assert direct.text == via_httpx.text


async def test_an_endpoint_over_a_transport_without_a_direct_path_goes_through_httpx() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"ok": True})

    endpoint = HttpPeer("http://peer.invalid/base/", httpx.MockTransport(answer), timeout_s=1).endpoint("x")
    got = await endpoint.post(b"{}", {"content-type": "application/json"})
    assert (got.status_code, got.content) == (202, b'{"ok":true}')
    assert str(seen[0].url) == "http://peer.invalid/base/x"


async def test_authentication_replaces_a_header_of_another_case_and_sends_it_once(
    echo: tuple[Echo, str],
) -> None:
    app, url = echo
    transport = AuthenticatedTransport(make_transport(max_connections=1), StaticBearer("tok-1"))
    endpoint = HttpPeer(url, transport, timeout_s=5).endpoint("/")
    try:
        await endpoint.post(b"{}", {"Authorization": "Bearer stale", "content-type": "application/json"})
    finally:
        await transport.aclose()
    assert [v for k, v in app.seen[0] if k == "authorization"] == ["Bearer tok-1"]


class Rotating:
    """A strategy whose token is refused once: the next is fresh."""

    def __init__(self) -> None:
        self.tokens = ["old", "new"]
        self.rejections = 0

    async def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[0]}"}

    async def rejected(self, sent: Mapping[str, str]) -> bool:
        self.rejections += 1
        self.tokens.pop(0)
        return True


async def test_a_401_on_the_direct_path_is_sent_once_more_with_new_credentials(
    echo: tuple[Echo, str],
) -> None:
    app, url = echo
    app.refused = {"old", "new"}  # both refused: the second 401 is the answer, not a third try
    strategy = Rotating()
    transport = AuthenticatedTransport(make_transport(max_connections=1), strategy)
    endpoint = HttpPeer(url, transport, timeout_s=5).endpoint("/")
    try:
        answer = await endpoint.post(b"{}", {"content-type": "application/json"})
        assert answer.status_code == 401
        assert strategy.rejections == 1
        assert [v for h in app.seen for k, v in h if k == "authorization"] == ["Bearer old", "Bearer new"]
        app.refused = set()
        assert (await endpoint.post(b"{}", {})).status_code == 200
    finally:
        await transport.aclose()


class Drip:
    """Answers 200 at once, then one byte of body every 50 ms for 2 s: no socket read ever waits long,
    but the whole answer takes far longer than a caller's timeout."""

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        for _ in range(40):
            await send({"type": "http.response.body", "body": b".", "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b""})


async def test_the_direct_path_bounds_the_whole_exchange_not_each_read() -> None:
    with ThreadedServer(Drip) as server:
        transport = make_transport(max_connections=1)
        endpoint = HttpPeer(server.url, transport, timeout_s=0.3).endpoint("/")
        started = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                await endpoint.post(b"{}", {})
            elapsed = time.monotonic() - started
        finally:
            await transport.aclose()
    assert elapsed < 1.5  # the drip would take 2 s


async def test_a_get_carries_its_query_added_to_the_urls_own(echo: tuple[Echo, str]) -> None:
    app, url = echo
    transport = make_transport(max_connections=1)
    endpoint = HttpPeer(url, transport, timeout_s=5).endpoint("/api/changes?province=H56")
    try:
        answer = await endpoint.get({"cursor": "2026-12-01T08:00 #5", "limit": "100"}, {})
    finally:
        await transport.aclose()
    assert answer.status_code == 200
    assert app.requests == [("GET", "/api/changes?province=H56&cursor=2026-12-01T08:00+%235&limit=100", b"")]
