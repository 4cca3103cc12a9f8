"""The provincial change feed: polled pages become events, the cursor moves only with the events it
covers, bad changes are refused alone, and a node killed with SIGKILL loses nothing and doubles nothing."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from lienthong.app import Lienthong, build
from lienthong.config import Config
from lienthong.sandbox.dossiers import generate, interleave
from lienthong.sandbox.provincial import ProvincialSandbox
from lienthong.store import units
from processes import Bus, free_port, wait_until


def events(dossiers: int, seed: int = 1) -> list[dict[str, Any]]:
    return list(interleave(generate(dossiers, seed=seed)))


def node(tmp_path: Path, url: str, **source: Any) -> Lienthong:
    config = Config.model_validate(
        {
            "store": {"path": str(tmp_path / "store.db")},
            "dispatcher": {"enabled": False},
            "sources": {"province": {"kind": "provincial_feed", "base_url": url, "page_size": 10, **source}},
        }
    )
    return build(config, registry=CollectorRegistry())


async def drain(bus: Lienthong) -> int:
    """Poll until the feed says it is caught up; the pages read."""
    (feed,) = bus.feeds
    pages = 1
    while await feed.poll_once():
        pages += 1
    return pages


async def test_pages_become_events_stored_once_under_the_feeds_caller(
    tmp_path: Path, province: tuple[ProvincialSandbox, str]
) -> None:
    peer, url = province
    sent = events(5)
    peer.publish(*sent)
    bus = node(tmp_path, url, caller="tinh-h56")
    bus.store.open()
    try:
        assert await drain(bus) == len(sent) // 10 + 1
        assert await bus.store.run(units.feed_cursor, "province") == str(len(sent))
        stored = await bus.store.run(units.stored_event, sent[-1]["event_id"])
        assert stored is not None
        assert stored.caller == "tinh-h56"
        served = peer.pages_served
        assert not await bus.feeds[0].poll_once()  # caught up: one page, empty
        assert peer.pages_served == served + 1
        later = events(1, seed=9)
        peer.publish(*later, *sent[:3])  # new changes, and old ones again (a feed may repeat itself)
        await drain(bus)
        assert await bus.store.run(units.stored_event, later[0]["event_id"]) is not None
        received = bus.metrics.registry.get_sample_value
        total = sum(
            received("lienthong_events_received_total", {"type": t, "outcome": "accepted"}) or 0
            for t in {e["type"] for e in [*sent, *later]}
        )
        assert total == len(sent) + len(later)
    finally:
        bus.store.close()


async def test_a_change_that_is_not_an_event_is_refused_alone(
    tmp_path: Path, province: tuple[ProvincialSandbox, str]
) -> None:
    peer, url = province
    good = events(1)
    peer.publish({"event_id": "x"}, "not an object", *good, {**good[0], "event_id": "no spaces allowed"})
    bus = node(tmp_path, url)
    bus.store.open()
    try:
        await drain(bus)
        assert await bus.store.run(units.feed_cursor, "province") == str(len(good) + 3)
        for event in good:
            assert await bus.store.run(units.stored_event, event["event_id"]) is not None
        refused = bus.metrics.registry.get_sample_value(
            "lienthong_events_received_total", {"type": "unknown", "outcome": "rejected"}
        )
        assert refused == 3
    finally:
        bus.store.close()


async def test_an_event_reusing_an_id_with_other_content_is_refused_and_the_rest_go_on(
    tmp_path: Path, province: tuple[ProvincialSandbox, str]
) -> None:
    peer, url = province
    first, second = events(2)[:2]
    peer.publish(first)
    bus = node(tmp_path, url)
    bus.store.open()
    try:
        await drain(bus)
        changed = {**first, "dossier": {**first["dossier"], "summary": "changed"}}
        peer.publish(changed, second)
        await drain(bus)
        assert await bus.store.run(units.stored_event, second["event_id"]) is not None
        stored = await bus.store.run(units.stored_event, first["event_id"])
        assert stored is not None
        assert stored.dossier.get("summary") != "changed"
    finally:
        bus.store.close()


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"changes": "nope"}, "has no list 'changes'"),
        ([1, 2], "is not a JSON object"),
        ({"changes": [], "next_cursor": {"a": 1}}, "is not a string"),
    ],
)
async def test_a_page_of_the_wrong_shape_moves_nothing(
    tmp_path: Path, province: tuple[ProvincialSandbox, str], answer: object, problem: str
) -> None:
    from lienthong.sources.provincial import FeedError  # noqa: PLC0415

    peer, url = province
    peer.routes[("GET", "/api/odd")] = _answering(answer)
    bus = node(tmp_path, url, path="/api/odd")
    bus.store.open()
    try:
        with pytest.raises(FeedError, match=problem):
            await bus.feeds[0].poll_once()
        assert await bus.store.run(units.feed_cursor, "province") is None
    finally:
        bus.store.close()


def _answering(payload: object) -> Any:
    from lienthong.sandbox.base import Answer  # noqa: PLC0415

    async def handler(_: object) -> Answer:
        return Answer.json(payload)

    return handler


@pytest.mark.slow
def test_a_node_killed_mid_feed_loses_and_doubles_nothing(
    tmp_path: Path, province: tuple[ProvincialSandbox, str]
) -> None:
    peer, url = province
    sent = events(150, seed=4)  # about 700 changes
    peer.publish(*sent)
    port = free_port()
    database = tmp_path / "lienthong.db"
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "store": {"path": str(database)},
        "dispatcher": {"enabled": False},
        "sources": {
            "province": {"kind": "provincial_feed", "base_url": url, "page_size": 7, "poll_interval_s": 0.2}
        },
    }
    path = tmp_path / "lienthong.yaml"
    path.write_text(json.dumps(config))
    bus = Bus(path, tmp_path / "bus.log", f"http://127.0.0.1:{port}")
    bus.start()
    try:
        wait_until(lambda: peer.pages_served >= 20, 30, "the feed to be read for a while")
        bus.kill()
        assert peer.pages_served < len(sent) // 7, "the kill came too late to interrupt the feed"
        bus.start()

        def caught_up() -> bool:
            with sqlite3.connect(database) as db:
                row = db.execute("SELECT cursor FROM cursors WHERE source = 'province'").fetchone()
            return row is not None and row[0] == str(len(sent))

        wait_until(caught_up, 60, "the restarted node to read the whole feed")
    finally:
        bus.stop()
    with sqlite3.connect(database) as db:
        ids = [row[0] for row in db.execute("SELECT event_id FROM events")]
    assert sorted(ids) == sorted(e["event_id"] for e in sent)  # every change, each once


async def test_a_failing_feed_backs_off_and_logs_once_per_change(
    tmp_path: Path, province: tuple[ProvincialSandbox, str], caplog: pytest.LogCaptureFixture
) -> None:
    from lienthong.sandbox.base import Answer  # noqa: PLC0415

    peer, url = province
    asked: list[float] = []
    broken = [True]

    async def flaky(_: object) -> Answer:
        asked.append(time.monotonic())
        if broken[0]:
            return Answer.json({"error": "down"}, 503)
        return Answer.json({"changes": [], "next_cursor": "0"})

    peer.routes[("GET", "/api/flaky")] = flaky
    bus = node(tmp_path, url, path="/api/flaky", poll_interval_s=0.05)
    bus.store.open()
    (feed,) = bus.feeds
    try:
        with caplog.at_level("WARNING", logger="lienthong.sources"):
            task = asyncio.create_task(feed.run())
            await asyncio.sleep(1.0)
            failing_asks = len(asked)
            broken[0] = False
            await asyncio.sleep(2.0)  # the longest wait so far is 1.6 s
            feed.stop()
            await asyncio.wait_for(task, 5)
    finally:
        bus.store.close()
    # 0.05 s between polls would ask 20 times in a second; doubling from 0.1 s asks about 4 times
    assert 2 <= failing_asks <= 6, failing_asks
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot be read" in m for m in messages) == 1
    assert sum("is read again" in m for m in messages) == 1
