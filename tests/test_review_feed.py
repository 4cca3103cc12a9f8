"""Review probes: the provincial change feed against a careless or hostile peer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from lienthong.app import Lienthong, build, build_feed
from lienthong.config import Config
from lienthong.sandbox.base import Answer
from lienthong.sandbox.dossiers import generate, interleave
from lienthong.sandbox.provincial import ProvincialSandbox
from lienthong.sandbox.tsa import TsaSandbox
from lienthong.serving import ThreadedServer
from lienthong.sources.provincial import FeedError
from lienthong.store import units
from test_feed import node
from test_msglog import keygen


def changes(n: int, seed: int = 7) -> list[dict[str, Any]]:
    return list(interleave(generate(n, seed=seed)))


LONE_SURROGATE = '"summary":"nop ho so \\ud83d",'
DEEP = '"extra":' + "[" * 1100 + "]" * 1100 + ","


def poisoned_page(poison: str) -> tuple[bytes, dict[str, Any]]:
    """A page of a change holding ``poison`` in its dossier, then a valid change; the next cursor moves
    past both."""
    broken, good = changes(2)[:2]
    broken_json = orjson.dumps(broken).decode().replace('"dossier":{', '"dossier":{' + poison, 1)
    body = '{"changes":[' + broken_json + "," + orjson.dumps(good).decode() + '],"next_cursor":"2"}'
    return body.encode(), good


def serving(province: tuple[ProvincialSandbox, str], tmp_path: Path, name: str, body: bytes) -> Lienthong:
    """A node whose feed reads ``body`` at ``/api/<name>``, whatever it asks."""
    peer, url = province

    async def page(_: Any) -> Answer:
        return Answer(200, body)

    peer.routes[("GET", f"/api/{name}")] = page
    return node(tmp_path, url, path=f"/api/{name}")


async def test_one_change_json_cannot_parse_does_not_block_the_feed_forever(
    tmp_path: Path, province: tuple[ProvincialSandbox, str]
) -> None:
    # Given a province whose system truncated one dossier's summary in the middle of an emoji (JavaScript's
    # substring does): its JSON carries "\ud83d", an escape RFC 8259's grammar allows, followed by a valid
    # change; the next cursor moves past both
    body, good = poisoned_page(LONE_SURROGATE)
    bus = serving(province, tmp_path, "surrogate", body)
    bus.store.open()
    try:
        for _ in range(3):  # the feed is polled again and again
            with contextlib.suppress(FeedError):
                await bus.feeds[0].poll_once()
        # Then the broken change is refused alone, as the feed's docstring promises, and the good one is
        # stored: the feed does not stop at this page for ever
        assert await bus.store.run(units.stored_event, good["event_id"]) is not None, (
            "one change orjson cannot parse makes every poll fail: the feed is stuck on this page for ever"
        )
    finally:
        bus.store.close()


async def test_a_page_nested_past_any_parsers_depth_is_refused_naming_the_problem(
    tmp_path: Path, province: tuple[ProvincialSandbox, str]
) -> None:
    # Given a page whose change nests 1,100 arrays deep: past orjson's limit (1,024) and the stdlib's
    # (Python's recursion limit). Decided: the page is refused whole, and the feed reports it (its state,
    # logged once, and the poll backs off) until the province fixes it; splitting a page no parser can
    # read into its changes would need a parser of our own for what no careless peer sends.
    body, _ = poisoned_page(DEEP)
    bus = serving(province, tmp_path, "deep", body)
    bus.store.open()
    try:
        with pytest.raises(FeedError, match="not JSON"):
            await bus.feeds[0].poll_once()
        assert await bus.store.run(units.feed_cursor, "province") is None  # nothing taken, nothing skipped
    finally:
        bus.store.close()


@pytest.mark.parametrize(
    ("name", "body", "problem"),
    [
        ("nan", b'{"changes":[],"next_cursor":NaN}', "not JSON"),  # not JSON: orjson and the stdlib agree
        ("cursor", b'{"changes":[],"next_cursor":"\\ud83d"}', "'next_cursor' is not valid text"),
    ],
)
async def test_what_the_stdlibs_parser_takes_beyond_json_is_refused_naming_it(
    tmp_path: Path, province: tuple[ProvincialSandbox, str], name: str, body: bytes, problem: str
) -> None:
    # Given a page orjson refuses that Python's parser would read: NaN (stored as null), or a cursor with
    # a lone surrogate (which no store can write as UTF-8)
    bus = serving(province, tmp_path, name, body)
    bus.store.open()
    try:
        # Then the page is refused, naming the problem, and the cursor stays where it was
        with pytest.raises(FeedError, match=problem):
            await bus.feeds[0].poll_once()
        assert await bus.store.run(units.feed_cursor, "province") is None
    finally:
        bus.store.close()


async def test_a_page_that_reuses_an_id_with_other_content_is_refused_and_counted(
    tmp_path: Path, province: tuple[ProvincialSandbox, str]
) -> None:
    # Given one page holding an event, and the same event id again with other content (the dossier's later
    # status): across pages that is refused as a reused id, logged and counted as rejected
    peer, url = province
    first = changes(1)[0]
    changed = {**first, "dossier": {**first["dossier"], "summary": "changed"}}
    peer.publish(first, changed)
    bus = node(tmp_path, url)
    bus.store.open()
    try:
        await bus.feeds[0].poll_once()
    finally:
        bus.store.close()
    rejected = sum(
        sample.value
        for metric in bus.metrics.registry.collect()
        if metric.name == "lienthong_events_received"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("outcome") == "rejected"
    )
    # Then the second, conflicting change is refused as it would be on the next page: counted, not dropped
    # without a trace
    assert rejected == 1, "an event id reused with other content in one page vanished silently"


async def test_a_next_cursor_that_is_true_or_false_is_refused_not_stored_as_text(
    tmp_path: Path, province: tuple[ProvincialSandbox, str]
) -> None:
    # Given a feed answering "next_cursor": true (a flag "has more" mistaken for the cursor)
    body = b'{"changes":[],"next_cursor":true}'
    bus = serving(province, tmp_path, "flag", body)
    bus.store.open()
    try:
        # Then the page is refused, naming the field, and no cursor "True" is stored
        with pytest.raises(FeedError, match="'next_cursor' is not a string"):
            await bus.feeds[0].poll_once()
        assert await bus.store.run(units.feed_cursor, "province") is None
    finally:
        bus.store.close()


@pytest.fixture
def tsa() -> Iterator[tuple[TsaSandbox, str]]:
    peer = TsaSandbox()
    with ThreadedServer(lambda: peer) as server:
        yield peer, f"{server.url}/tsr"


async def test_the_feed_takes_no_new_events_while_the_message_log_refuses_them(
    tmp_path: Path,
    province: tuple[ProvincialSandbox, str],
    tsa: tuple[TsaSandbox, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a node whose message log has waited too long for a timestamp: POST /v1/events answers 503
    # ("new events are refused until it has one")
    peer, url = province
    tsa_peer, tsa_url = tsa
    key, _ = keygen(tmp_path, capsys)
    (tmp_path / "tsa-root.pem").write_bytes(tsa_peer.certificates.root_pem)
    config = Config.model_validate(
        {
            "store": {"path": str(tmp_path / "store.db")},
            "dispatcher": {"enabled": False},
            "sources": {"province": {"kind": "provincial_feed", "base_url": url, "page_size": 10}},
            "message_log": {
                "origin": "lienthong.test",
                "key_file": str(key),
                "timestamp": {
                    "url": tsa_url,
                    "ca_file": str(tmp_path / "tsa-root.pem"),
                    "max_age_s": 0.5,
                    "timeout_s": 2,
                },
            },
        }
    )
    bus = build(config, registry=CollectorRegistry())
    first, later = changes(2)[:2]
    peer.publish(first)
    bus.store.open()
    try:
        (feed,) = bus.feeds
        await feed.poll_once()
        checkpointer = bus.checkpointer
        assert checkpointer is not None
        tsa_peer.inject("error")
        assert await checkpointer.checkpoint() is not None  # signed, not stamped
        await asyncio.sleep(0.7)
        assert checkpointer.refusal() is not None  # the API would answer 503 now
        # When the feed is polled
        peer.publish(later)
        with contextlib.suppress(Exception):
            await feed.poll_once()
        stored = await bus.store.run(units.stored_event, later["event_id"])
    finally:
        bus.store.close()
    # Then the new event waits at the province, as one POSTed would be refused
    assert stored is None, "the feed took a new event the node refuses on POST /v1/events"


async def test_the_feed_resumes_within_its_interval_once_the_node_takes_events_again(
    tmp_path: Path, province: tuple[ProvincialSandbox, str]
) -> None:
    """A refusal is the node's own state, not the province failing: the feed keeps looking every
    ``poll_interval_s`` (it sends nothing meanwhile) instead of backing off towards five minutes, which
    left events waiting at the province for minutes after the message log was timestamped again."""
    peer, url = province
    bus = node(tmp_path, url, poll_interval_s=0.05)
    refused = ["the message log has gone too long without a timestamp"]
    config = bus.config
    feed = build_feed(
        "province",
        config.sources["province"],
        config,
        store=bus.store,
        ingestor=bus.ingestor,
        metrics=bus.metrics,
        clock=bus.clock,
        refusal=lambda: refused[0] if refused else None,
    )
    bus.store.open()
    polling = asyncio.create_task(feed.run())
    try:
        await asyncio.sleep(2.0)  # refused all along: backing off would now wait 1.6 s, then 3.2 s
        (change,) = changes(1)[:1]
        peer.publish(change)
        refused.clear()
        await asyncio.sleep(0.8)
        stored = await bus.store.run(units.stored_event, change["event_id"])
    finally:
        feed.stop()
        await polling
        await feed.aclose()
        bus.store.close()
    assert stored is not None, "the feed kept backing off after the refusal ended"
