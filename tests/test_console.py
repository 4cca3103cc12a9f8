"""The web console at ``/admin`` over real HTTP (issue 14 §4): log in with an operator's token only, a
signed session cookie (HttpOnly, SameSite=Strict) that cannot be forged, POSTs refused without the
console's origin and the session's CSRF token, a reason for every replay and discard, and a dead letter's
error text shown escaped."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx

from conftest import TOKEN, Running, RunNode
from lienthong.console.session import COOKIE
from lienthong.store import units
from test_dlq_support import ADMIN_TOKEN, REFUSED, dead_letters, still_node

INJECTED = (
    'portal.X: the service refused the request: <script>alert(1)</script><img src=x onerror="x"> "q"',
    None,
)


@contextlib.asynccontextmanager
async def logged_in(running: Running) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client holding an operator's session, and its CSRF token (read from the overview's forms)."""
    origin = str(running.client.base_url).rstrip("/")
    async with httpx.AsyncClient(base_url=origin, timeout=10, headers={"origin": origin}) as client:
        yield await _log_in(client)


async def _log_in(client: httpx.AsyncClient) -> tuple[httpx.AsyncClient, str]:
    answer = await client.post("/admin/login", data={"token": ADMIN_TOKEN})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/;" in cookie or cookie.endswith("Path=/")
    page = await client.get("/admin")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert found is not None
    return client, found.group(1)


async def test_a_callers_token_or_a_wrong_one_does_not_log_in(run_node: RunNode) -> None:
    running = await still_node(run_node)
    origin = str(running.client.base_url).rstrip("/")
    async with httpx.AsyncClient(base_url=origin, timeout=10, headers={"origin": origin}) as client:
        assert (await client.get("/admin")).headers["location"] == "/admin/login"
        province = await client.post("/admin/login", data={"token": TOKEN})
        assert province.status_code == 403
        assert "provincial system" in province.text
        assert (await client.post("/admin/login", data={"token": "guess"})).status_code == 401
        assert COOKIE not in client.cookies
        elsewhere = await client.post(
            "/admin/login", data={"token": ADMIN_TOKEN}, headers={"origin": "http://evil.example"}
        )
        assert elsewhere.status_code == 403


async def test_a_forged_or_edited_session_cookie_is_refused(run_node: RunNode) -> None:
    running = await still_node(run_node)
    async with logged_in(running) as (client, _):
        real = client.cookies[COOKIE]
        name, expiry, signature = real.split(".")
        forged = [
            "bGFu.9999999999.00",
            f"{name}.{int(expiry) + 10**6}.{signature}",  # a later expiry under the old signature
            f"bWluaA.{expiry}.{signature}",  # another name under the old signature
            "not-a-session",
        ]
        for value in forged:
            client.cookies.clear()
            client.cookies.set(COOKIE, value)
            answer = await client.get("/admin")
            assert (answer.status_code, answer.headers.get("location")) == (303, "/admin/login"), value


async def test_posts_without_the_consoles_origin_or_csrf_token_change_nothing(run_node: RunNode) -> None:
    running = await still_node(run_node)
    (letter,) = await dead_letters(running, REFUSED)
    path = f"/admin/messages/{letter}/discard"
    async with logged_in(running) as (client, csrf):
        no_token = await client.post(path, data={"reason": "x"})
        wrong_token = await client.post(path, data={"reason": "x", "csrf": "0" * 64})
        other_site = await client.post(
            path, data={"reason": "x", "csrf": csrf}, headers={"origin": "http://evil.example"}
        )
        client.headers.pop("origin")
        no_origin = await client.post(path, data={"reason": "x", "csrf": csrf})
        other_referer = await client.post(
            path, data={"reason": "x", "csrf": csrf}, headers={"referer": "http://evil.example/admin"}
        )
        assert [a.status_code for a in (no_token, wrong_token, other_site, no_origin, other_referer)] == [
            403
        ] * 5
        view = await running.node.store.run(units.message, letter)
        assert view is not None
        assert view.status == "dead"
        own = str(running.client.base_url).rstrip("/")
        done = await client.post(
            path, data={"reason": "x", "csrf": csrf}, headers={"referer": f"{own}/admin"}
        )
        assert done.status_code == 303


async def test_a_discard_or_replay_without_a_reason_is_refused(run_node: RunNode) -> None:
    running = await still_node(run_node)
    (letter,) = await dead_letters(running, REFUSED)
    async with logged_in(running) as (client, csrf):
        for action in ("discard", "replay"):
            answer = await client.post(
                f"/admin/messages/{letter}/{action}", data={"reason": "  ", "csrf": csrf}
            )
            assert answer.status_code == 422
            assert "needs a reason" in answer.text
        assert await running.node.store.run(units.operator_actions, 10, None) == []


async def test_a_dead_letters_error_text_is_shown_escaped(run_node: RunNode) -> None:
    running = await still_node(run_node)
    (letter,) = await dead_letters(running, INJECTED)
    async with logged_in(running) as (client, _):
        for page in (await client.get("/admin"), await client.get(f"/admin/messages/{letter}")):
            assert page.status_code == 200
            assert "<script>" not in page.text
            assert "<img" not in page.text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
            assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_behind_a_tls_proxy_on_the_same_host_the_session_cookie_is_secure(run_node: RunNode) -> None:
    """A proxy on the node's host that ends TLS says so (``X-Forwarded-Proto: https``), and uvicorn trusts
    it from 127.0.0.1 only: the console's origin is then https, and its cookie is sent over TLS only. Over
    plain HTTP the cookie cannot be Secure (the browser would never send it back)."""
    running = await still_node(run_node)
    plain = str(running.client.base_url).rstrip("/")
    proxied = plain.replace("http://", "https://", 1)
    async with httpx.AsyncClient(base_url=plain, timeout=10) as client:
        direct = await client.post("/admin/login", data={"token": ADMIN_TOKEN}, headers={"origin": plain})
        assert direct.status_code == 303
        assert "secure" not in direct.headers["set-cookie"].lower()
        behind = await client.post(
            "/admin/login",
            data={"token": ADMIN_TOKEN},
            headers={"origin": proxied, "x-forwarded-proto": "https"},
        )
        assert behind.status_code == 303
        assert "secure" in behind.headers["set-cookie"].lower()
        # The http origin no longer matches what the proxy said: refused, not logged in over http.
        mixed = await client.post(
            "/admin/login",
            data={"token": ADMIN_TOKEN},
            headers={"origin": plain, "x-forwarded-proto": "https"},
        )
        assert mixed.status_code == 403
