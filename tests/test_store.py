"""The outbox store contract: idempotent ingest, ordered claims, outcomes, recovery, the ledger.

Parametrized over store backends so every backend passes the same tests.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from lienthong.bus.committer import Committer
from lienthong.bus.envelope import ParsedEvent, parse_body
from lienthong.bus.ingest import MessageIds, ingest_item
from lienthong.bus.sqlite import SqliteOutbox
from lienthong.bus.store import OutboxStore
from lienthong.errors import IdempotencyConflict, StoreError
from lienthong.model import IngestItem, IngestResult, Outcome, PlannedMessage
from lienthong.sandbox.dossiers import generate

NOW = 1_700_000_000_000
new_id = MessageIds()

StoreFactory = Callable[[], OutboxStore]


@pytest.fixture(params=["sqlite"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    def factory() -> OutboxStore:
        return SqliteOutbox(tmp_path / "outbox.db", synchronous="normal")

    assert request.param == "sqlite"
    return factory


@pytest.fixture
def store(open_store: StoreFactory) -> Iterator[OutboxStore]:
    s = open_store()
    yield s
    s.close()


def parsed(event: dict[str, Any]) -> ParsedEvent:
    events, _ = parse_body(orjson.dumps(event), dossier_code_field="code", max_events=10)
    return events[0]


def item(event: dict[str, Any], *destinations: str) -> IngestItem:
    deliveries = tuple(PlannedMessage(new_id(), d, "op") for d in destinations)
    return ingest_item(parsed(event), deliveries)


def tx(store: OutboxStore, fn: Callable[[OutboxStore], Any]) -> Any:
    store.begin()
    try:
        result = fn(store)
    except BaseException:
        store.rollback()
        raise
    store.commit()
    return result


def one_request(store: OutboxStore, items: list[IngestItem]) -> list[IngestResult]:
    (answer,) = store.ingest([items], NOW)
    if isinstance(answer, Exception):
        raise answer
    return answer


def done(message: str, attempt: int = 1, kind: str = "delivered", next_ms: int | None = None) -> Outcome:
    return Outcome(message, kind, attempt, NOW, NOW + 5, next_ms, None if kind == "delivered" else "boom")  # type: ignore[arg-type]


def test_ingest_is_idempotent_on_event_id(store: OutboxStore) -> None:
    event = generate(1)[0].events[0]
    first = tx(store, lambda s: one_request(s, [item(event, "portal", "emc")]))
    again = tx(store, lambda s: one_request(s, [item(event, "portal", "emc")]))
    assert not first[0].duplicate
    assert again[0].duplicate
    assert again[0].message_ids == first[0].message_ids
    assert len(tx(store, lambda s: s.claim(NOW, 10))) == 2


def test_a_reused_event_id_with_a_different_payload_conflicts(store: OutboxStore) -> None:
    event = generate(1)[0].events[0]
    tx(store, lambda s: one_request(s, [item(event, "portal")]))
    changed = {**event, "unit_code": "other"}
    with pytest.raises(IdempotencyConflict):
        tx(store, lambda s: one_request(s, [item(changed, "portal")]))


def test_claims_give_one_row_per_dossier_and_destination_oldest_first(store: OutboxStore) -> None:
    a, b = generate(2)
    items = [item(a.events[0], "portal"), item(a.events[1], "portal"), item(b.events[0], "portal")]
    tx(store, lambda s: one_request(s, items))
    claimed = tx(store, lambda s: s.claim(NOW, 10))
    assert [c.event.event_id for c in claimed] == [a.events[0]["event_id"], b.events[0]["event_id"]]
    assert tx(store, lambda s: s.claim(NOW, 10)) == []  # a's second row waits behind its first, in flight
    tx(store, lambda s: s.complete([done(claimed[0].message_id)]))
    (next_row,) = tx(store, lambda s: s.claim(NOW, 10))
    assert next_row.event.event_id == a.events[1]["event_id"]
    assert next_row.event.dossier["status"] == "processing"


def test_a_row_waiting_for_retry_holds_back_its_dossier_until_due(store: OutboxStore) -> None:
    (a,) = generate(1)
    tx(store, lambda s: one_request(s, [item(a.events[0], "portal"), item(a.events[1], "portal")]))
    (first,) = tx(store, lambda s: s.claim(NOW, 10))
    tx(store, lambda s: s.complete([done(first.message_id, kind="retry", next_ms=NOW + 1000)]))
    assert tx(store, lambda s: s.claim(NOW + 999, 10)) == []
    (again,) = tx(store, lambda s: s.claim(NOW + 1000, 10))
    assert again.message_id == first.message_id
    assert again.attempts == 1


def test_a_dead_letter_releases_its_dossier(store: OutboxStore) -> None:
    (a,) = generate(1)
    tx(store, lambda s: one_request(s, [item(a.events[0], "portal"), item(a.events[1], "portal")]))
    (first,) = tx(store, lambda s: s.claim(NOW, 10))
    tx(store, lambda s: s.complete([done(first.message_id, kind="dead")]))
    (second,) = tx(store, lambda s: s.claim(NOW, 10))
    assert second.event.event_id == a.events[1]["event_id"]
    (stats,) = tx(store, lambda s: s.stats())
    assert (stats.dead, stats.inflight, stats.pending) == (1, 1, 0)


def test_an_outcome_and_the_events_it_raises_commit_together(store: OutboxStore) -> None:
    (a,) = generate(1)
    tx(store, lambda s: one_request(s, [item(a.events[0], "portal")]))
    (first,) = tx(store, lambda s: s.claim(NOW, 10))
    failed_id = f"failed:{first.message_id}:1"
    failed: dict[str, Any] = {
        "event_id": failed_id,
        "type": "delivery.failed",
        "occurred_at": "2026-01-01T00:00:00+07:00",
        "unit_code": "U1",
        "dossier": {"code": a.code, "failure": {"message_id": first.message_id}},
    }
    dead = replace(done(first.message_id, kind="dead"), raises=(item(failed, "province"),))

    store.begin()
    store.complete([dead])
    store.rollback()  # a failure before the commit loses both, never one of them
    assert tx(store, lambda s: s.stored_event(failed_id)) is None
    assert tx(store, lambda s: s.message(first.message_id)).status == "inflight"

    tx(store, lambda s: s.complete([dead]))
    assert tx(store, lambda s: s.message(first.message_id)).status == "dead"
    (notice,) = tx(store, lambda s: s.claim(NOW + 10, 10))  # raised at the outcome's time
    assert (notice.destination, notice.event.event_id) == ("province", failed_id)
    tx(store, lambda s: s.complete([dead]))  # the same outcome again raises nothing new
    waiting = {d.destination: d.pending + d.inflight for d in tx(store, lambda s: s.stats())}
    assert waiting == {"portal": 0, "province": 1}


def test_destinations_are_ordered_independently(store: OutboxStore) -> None:
    (a,) = generate(1)
    tx(store, lambda s: one_request(s, [item(a.events[0], "portal", "emc")]))
    claimed = tx(store, lambda s: s.claim(NOW, 10))
    assert sorted(c.destination for c in claimed) == ["emc", "portal"]


def test_recover_returns_rows_in_flight_to_pending(store: OutboxStore) -> None:
    events = [s.events[0] for s in generate(3)]
    tx(store, lambda s: one_request(s, [item(e, "portal") for e in events]))
    assert len(tx(store, lambda s: s.claim(NOW, 2))) == 2
    assert tx(store, lambda s: s.recover()) == 2
    assert len(tx(store, lambda s: s.claim(NOW, 10))) == 3


def test_a_message_view_lists_every_attempt(store: OutboxStore) -> None:
    (a,) = generate(1)
    tx(store, lambda s: one_request(s, [item(a.events[0], "portal")]))
    (row,) = tx(store, lambda s: s.claim(NOW, 1))
    tx(store, lambda s: s.complete([done(row.message_id, 1, "retry", NOW)]))
    tx(store, lambda s: s.claim(NOW, 1))
    tx(store, lambda s: s.complete([done(row.message_id, 2)]))
    view = tx(store, lambda s: s.message(row.message_id))
    assert view.status == "delivered"
    assert view.attempts == 2
    assert [(h.attempt, h.outcome, h.duration_ms) for h in view.history] == [
        (1, "retry", 5),
        (2, "delivered", 5),
    ]


def test_the_ledger_keeps_the_latest_state_even_when_events_arrive_out_of_order(store: OutboxStore) -> None:
    (a,) = generate(1)
    received, processing, issued, returned = a.events
    tx(store, lambda s: one_request(s, [item(returned)]))
    tx(store, lambda s: one_request(s, [item(received), item(processing), item(issued)]))
    entry = tx(store, lambda s: s.ledger_entry(a.code))
    assert entry.status == "returned"
    assert entry.last_event_id == returned["event_id"]
    assert entry.returned_at == returned["dossier"]["returned_at"]
    assert entry.result_sha256 == (returned["dossier"]["results"][0]["sha256"],)


def test_a_store_written_by_a_newer_schema_is_refused(tmp_path: Path) -> None:
    SqliteOutbox(tmp_path / "db").close()
    with sqlite3.connect(tmp_path / "db") as db:
        db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="schema version is 99"):
        SqliteOutbox(tmp_path / "db")


def test_an_unopenable_store_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the SQLite store"):
        SqliteOutbox(tmp_path / "no" / "such" / "dir" / "db")


def test_merged_requests_are_each_all_or_nothing(store: OutboxStore) -> None:
    a, b, c = generate(3)
    tx(store, lambda s: one_request(s, [item(a.events[0], "portal")]))
    conflicting = {**a.events[0], "unit_code": "other"}
    requests = [
        [item(b.events[0], "portal")],
        [item(c.events[0], "portal"), item(conflicting, "portal")],  # refused whole: c is not stored
        [item(b.events[0], "portal"), item(b.events[1], "portal")],  # b's first event again: a duplicate
    ]
    first, refused, third = tx(store, lambda s: s.ingest(requests, NOW))
    assert isinstance(refused, IdempotencyConflict)
    assert [r.duplicate for r in first] == [False]
    assert [r.duplicate for r in third] == [True, False]
    assert third[0].message_ids == first[0].message_ids
    assert tx(store, lambda s: s.ledger_entry(c.code)) is None
    assert tx(store, lambda s: s.ledger_entry(b.code)).last_event_id == b.events[1]["event_id"]


class Boom(Exception):
    pass


def ingest_then_fail(one: IngestItem, store: OutboxStore) -> list[IngestResult]:
    one_request(store, [one])
    raise Boom


def ingest_one(one: IngestItem, store: OutboxStore) -> list[IngestResult]:
    return one_request(store, [one])


class CountingStore(SqliteOutbox):
    commits = 0

    def commit(self) -> None:
        CountingStore.commits += 1
        super().commit()


async def test_concurrent_operations_share_transactions(tmp_path: Path) -> None:
    committer: Committer[OutboxStore] = Committer(lambda: CountingStore(tmp_path / "db"))
    committer.start()
    CountingStore.commits = 0
    try:
        calls = [committer.call(partial(ingest_one, item(st.events[0], "portal"))) for st in generate(50)]
        await asyncio.gather(*calls)
    finally:
        committer.close()
    assert 0 < CountingStore.commits < len(calls)


async def test_an_operation_that_raises_fails_alone(tmp_path: Path) -> None:
    committer: Committer[OutboxStore] = Committer(lambda: SqliteOutbox(tmp_path / "db"))
    committer.start()
    streams = generate(20)
    try:
        calls = [committer.call(partial(ingest_one, item(st.events[0], "portal"))) for st in streams[1:]]
        calls.insert(7, committer.call(partial(ingest_then_fail, item(streams[0].events[0], "portal"))))
        results = await asyncio.gather(*calls, return_exceptions=True)
        claimed = await committer.call(lambda s: s.claim(NOW, 100))
    finally:
        committer.close()
    failed = results.pop(7)
    assert isinstance(failed, StoreError)
    assert isinstance(failed.__cause__, Boom)
    assert all(not isinstance(r, BaseException) for r in results)
    assert sorted(c.dossier_code for c in claimed) == sorted(
        st.code for st in streams[1:]
    )  # the failed op left nothing


async def test_a_closed_committer_refuses_calls(tmp_path: Path) -> None:
    committer: Committer[OutboxStore] = Committer(lambda: SqliteOutbox(tmp_path / "db"))
    committer.start()
    committer.close()
    with pytest.raises(StoreError, match="closed"):
        await committer.call(lambda s: s.stats())


def test_a_committer_whose_store_cannot_open_raises_at_start(tmp_path: Path) -> None:
    committer: Committer[OutboxStore] = Committer(lambda: SqliteOutbox(tmp_path / "missing" / "db"))
    with pytest.raises(StoreError):
        committer.start()
