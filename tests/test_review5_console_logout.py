"""Review 5 (found in review, fixed): a console session cookie kept from before a logout opens nothing."""

from __future__ import annotations

import httpx

from conftest import RunNode
from lienthong.console.session import COOKIE, Sessions
from test_console import logged_in
from test_dlq_support import still_node


async def test_a_cookie_kept_from_before_logout_no_longer_opens_the_console(run_node: RunNode) -> None:
    running = await still_node(run_node)
    async with logged_in(running) as (client, csrf):
        kept = client.cookies[COOKIE]
        out = await client.post("/admin/logout", data={"csrf": csrf})
        assert out.status_code == 303
    origin = str(running.client.base_url).rstrip("/")
    async with httpx.AsyncClient(base_url=origin, timeout=10, cookies={COOKIE: kept}) as thief:
        page = await thief.get("/admin")
        assert page.status_code == 303, "the logged-out session's cookie still opens the console"


def test_ended_sessions_are_kept_only_until_they_would_have_expired() -> None:
    now = [1_000.0]
    sessions = Sessions(60, clock=lambda: now[0])
    first, second = sessions.issue("an"), sessions.issue("binh")
    sessions.end(first)
    sessions.end("forged.1.x")  # names no session: nothing kept
    assert (sessions.operator(first), sessions.operator(second)) == (None, "binh")
    now[0] += 61  # both would have expired
    later = sessions.issue("chi")
    sessions.end(later)
    assert sessions.operator(later) is None
    assert len(sessions._ended) == 1  # the first's entry went when it could no longer open anything
