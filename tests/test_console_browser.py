"""The console in a real browser (issue 14 §4): Playwright drives Debian's chromium, with no network but
loopback. An operator logs in with the token, finds the portal's dead letter, dry-runs its replay, replays
it once the portal's catalogue knows the procedure, and sees it delivered. Skips locally without chromium;
fails under CI (``tests/browser.py``)."""

from __future__ import annotations

import pytest

from browser import chromium_or_skip
from conftest import Peers, RunNode
from lienthong.sandbox.dossiers import UNKNOWN_PROCEDURE, generate
from lienthong.store import units
from test_dlq_support import ADMIN_SECTION, ADMIN_TOKEN

pytestmark = pytest.mark.slow


async def test_an_operator_logs_in_finds_a_dead_letter_dry_runs_and_replays_it_and_sees_it_delivered(
    run_node: RunNode, peers: Peers
) -> None:
    executable = chromium_or_skip()
    async_api = pytest.importorskip("playwright.async_api")
    running = await run_node(admin=ADMIN_SECTION)
    (stream,) = generate(1, unknown_share=1.0)  # a procedure the portal's catalogue lacks: refused, dead
    answer = await running.post(stream.events[0])
    portal_id = answer.json()["message_ids"][0]
    await running.settle()
    assert (await running.node.store.run(units.message, portal_id)).status == "dead"
    base = str(running.client.base_url).rstrip("/")

    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        page = await browser.new_page(java_script_enabled=False)  # usable without JavaScript
        fetched: list[str] = []
        page.on("request", lambda request: fetched.append(request.url))
        await page.goto(f"{base}/admin")
        assert page.url == f"{base}/admin/login"
        await page.fill("input[name=token]", ADMIN_TOKEN)
        async with page.expect_navigation():
            await page.click("button:has-text('Log in')")
        assert page.url == f"{base}/admin", await page.content()
        assert await page.locator("td", has_text="portal").first.is_visible()

        # Find the dead letter: the refused ones, for the portal.
        await page.select_option("select[name=destination]", "portal")
        await page.select_option("select[name=error_class]", "refused")
        async with page.expect_navigation():
            await page.click("text=Filter")
        async with page.expect_navigation():
            await page.click(f"text={portal_id}")
        assert "không có trong danh mục" in await page.inner_text("main")

        async with page.expect_navigation():
            await page.click("button:has-text('Dry run')")
        assert "Dry run, nothing changed" in await page.inner_text("main")
        assert "maps cleanly" in await page.inner_text("main")
        assert (await running.node.store.run(units.message, portal_id)).status == "dead"

        peers.portal.procedures = (peers.portal.procedures or frozenset()) | {UNKNOWN_PROCEDURE[0]}  # fixed
        replay_form = page.locator("form[action$='/replay']").filter(has=page.locator("input[name=reason]"))
        await replay_form.locator("input[name=reason]").fill("procedure added to the portal's catalogue")
        async with page.expect_navigation():
            await replay_form.locator("button:has-text('Replay')").click()
        assert "Replayed: it is pending again." in await page.inner_text("main")

        await running.settle()
        await page.reload()
        assert "delivered" in await page.inner_text("main")
        actions = await page.inner_text("main")
        assert "procedure added to the portal's catalogue" in actions
        await browser.close()

    view = await running.node.store.run(units.message, portal_id)
    assert view is not None
    assert view.status == "delivered"
    assert all(url.startswith(base) for url in fetched), fetched  # nothing from elsewhere
