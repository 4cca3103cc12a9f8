"""PostgreSQL only: per-key order when transactions commit out of seq order, claims from two nodes,
migrations, and the pool's workers under concurrent callers (decision 0010). The contract every backend
keeps is tests/test_store_contract.py."""

from __future__ import annotations

import asyncio
import functools
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest

from lienthong.bus.envelope import parse_body
from lienthong.bus.ingest import MessageIds, ingest_item
from lienthong.errors import IdempotencyConflict, StoreError, StoreUnavailable
from lienthong.model import IngestItem, Message, Outcome, PlannedMessage
from lienthong.payments.records import CallbackRecord, Claim, PaymentRecord, Settlement
from lienthong.sandbox.dossiers import generate
from lienthong.store import Store, sqlite, units
from lienthong.store import postgres as pg
from lienthong.store.process import ProcessRunner

pytestmark = pytest.mark.postgres

NOW = 1_700_000_000_000
LEASE = 60_000
new_id = MessageIds()


def item(event: dict[str, Any], *destinations: str) -> IngestItem:
    events, _ = parse_body(orjson.dumps(event), dossier_code_field="code", max_events=10)
    return ingest_item(events[0], tuple(PlannedMessage(new_id(), d, "op") for d in destinations), "")


def delivered(message: Message, now: int = NOW) -> Outcome:
    return Outcome(message.message_id, "delivered", 1, now, now + 1, lease_until_ms=message.lease_until_ms)


def open_store(dsn: str, size: int = 2) -> Store:
    store = Store(pg.PostgresPool(dsn, size=size, init=False).runner())
    store.open()
    return store


@pytest.fixture
def backends(pg_dsn: str) -> Iterator[list[pg.PostgresBackend]]:
    """Three backends on their own connections to one migrated schema, as three nodes' connections."""
    pg.upgrade(pg_dsn)
    opened = [pg.PostgresBackend(psycopg.connect(pg_dsn)) for _ in range(3)]
    yield opened
    for backend in opened:
        backend.close()


def seqs(backend: pg.PostgresBackend) -> dict[str, int]:
    """Each event's outbox seq (read in a transaction of its own)."""
    rows = backend.connection.execute("SELECT event_id, seq FROM outbox").fetchall()
    backend.connection.rollback()
    return dict(rows)


def race(writers: list[pg.PostgresBackend], claimer: pg.PostgresBackend) -> tuple[list[Message], bool]:
    """Two transactions add one message each for one key: the first takes the lower seq and stays open
    while the second commits, and a claim runs meanwhile. Returns what that claim handed out (after the
    first committed, if the claim had to wait for it) and whether the second committed before the first.

    The first stops between its outbox rows and its ledger update: once it holds the dossier's ledger row,
    that row's lock alone would hold the second back (the window is narrow, not closed)."""
    first, second = generate(1)[0].events[:2]
    one, two = writers
    early = item(first, "portal")
    one.begin()
    one.events.add([early], NOW)
    one.outbox.add([early], NOW)  # takes the lower seq, not committed yet

    second_done = threading.Event()

    def add_second() -> None:
        two.begin()
        units.ingest(two, [[item(second, "portal")]], NOW)
        two.commit()
        second_done.set()

    claimed: list[Message] = []

    def claim() -> None:
        claimer.begin()
        claimed.extend(units.claim(claimer, NOW, 10, LEASE))
        claimer.commit()

    adder = threading.Thread(target=add_second)
    adder.start()
    overtook = second_done.wait(0.5)
    claiming = threading.Thread(target=claim)
    claiming.start()
    claiming.join(0.5)
    one.ledger.apply([early.ledger], NOW)
    one.commit()
    adder.join(10)
    claiming.join(10)
    assert not adder.is_alive()
    assert not claiming.is_alive()
    return claimed, overtook


def test_a_transaction_committing_a_later_seq_first_cannot_overtake_the_earlier(
    backends: list[pg.PostgresBackend],
) -> None:
    first, _ = generate(1)[0].events[:2]
    claimed, overtook = race(backends[:2], backends[2])
    assert not overtook  # the second waited for the order lock until the first committed
    assert [m.event.event_id for m in claimed] == [first["event_id"]]


def test_without_the_order_lock_the_later_event_is_claimed_first(
    backends: list[pg.PostgresBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the race above, with the order lock taken out, hands the later event out first."""
    first, second = generate(1)[0].events[:2]
    monkeypatch.setattr(pg._Db, "order_lock", lambda self: None)
    claimed, overtook = race(backends[:2], backends[2])
    assert overtook
    order = seqs(backends[2])
    assert order[first["event_id"]] < order[second["event_id"]]
    assert [m.event.event_id for m in claimed] == [second["event_id"]]  # the bug decision 0010 prevents


def test_a_request_racing_the_same_event_on_another_node_gets_the_duplicate_answer(
    backends: list[pg.PostgresBackend],
) -> None:
    """The look-up of known events waits for the order lock: a second transaction storing the same event
    sees it once the first commits, instead of missing it and then hitting the unique key."""
    event = generate(1)[0].events[0]
    one, two, _ = backends
    one.begin()
    (stored,) = units.ingest(one, [[item(event, "portal")]], NOW)
    answers: list[units.Answer] = []

    def again() -> None:
        two.begin()
        answers.extend(units.ingest(two, [[item(event, "portal")]], NOW))
        two.commit()

    racer = threading.Thread(target=again)
    racer.start()
    racer.join(0.3)
    one.commit()
    racer.join(10)
    assert not isinstance(stored, IdempotencyConflict)
    (answer,) = answers
    assert not isinstance(answer, IdempotencyConflict)
    assert answer[0].duplicate
    assert answer[0].message_ids == stored[0].message_ids


async def test_two_nodes_claiming_together_keep_one_message_in_flight_per_key_in_order(pg_dsn: str) -> None:
    """Two stores (two nodes' pools) on one database claim and complete while a third keeps ingesting:
    no key is ever in flight twice, and every key's messages are handed out in the order they came."""
    streams = generate(40, seed=11)
    nodes = [open_store(pg_dsn), open_store(pg_dsn), open_store(pg_dsn)]
    feeder, *claimers = nodes
    expected: dict[tuple[str, str], list[str]] = {}
    for stream in streams:
        for event in stream.events:
            for destination in ("portal", "emc"):
                expected.setdefault((destination, stream.code), []).append(event["event_id"])
    total = sum(len(ids) for ids in expected.values())
    in_flight: set[tuple[str, str]] = set()
    handed: dict[tuple[str, str], list[str]] = {}

    async def feed() -> None:
        for stage in range(4):  # every dossier's first event, then every second one, ...
            batch = [item(s.events[stage], "portal", "emc") for s in streams if stage < len(s.events)]
            for start in range(0, len(batch), 7):
                (answer,) = await feeder.run(units.ingest, [batch[start : start + 7]], NOW)
                assert not isinstance(answer, IdempotencyConflict)
                await asyncio.sleep(0)

    async def dispatch(store: Store) -> None:
        while sum(len(ids) for ids in handed.values()) < total:
            claimed = await store.run(units.claim, NOW, 5, LEASE)
            for message in claimed:
                key = (message.destination, message.dossier_code)
                assert key not in in_flight, f"{key} claimed twice"
                in_flight.add(key)
                handed.setdefault(key, []).append(message.event.event_id)
            await asyncio.sleep(0)
            for message in claimed:
                in_flight.discard((message.destination, message.dossier_code))
                await store.run(units.complete, [delivered(message)])
            if not claimed:
                await asyncio.sleep(0.001)

    try:
        await asyncio.wait_for(asyncio.gather(feed(), *(dispatch(s) for s in claimers)), 60)
    finally:
        for store in nodes:
            store.close()
    assert handed == expected


async def test_many_concurrent_callers_are_all_answered_and_a_raced_event_is_stored_once(pg_dsn: str) -> None:
    store = open_store(pg_dsn, size=4)
    try:
        streams = generate(200, seed=5)
        fresh = [store.run(units.ingest, [[item(s.events[0], "portal")]], NOW) for s in streams]
        same = streams[0].events[1]
        raced = [store.run(units.ingest, [[item(same, "portal")]], NOW) for _ in range(40)]
        answers = await asyncio.gather(*fresh, *raced)
        results = [answer for (answer,) in answers]
        assert not any(isinstance(r, IdempotencyConflict) for r in results)
        firsts = [r[0] for r in results if not isinstance(r, IdempotencyConflict)]
        assert sum(not r.duplicate for r in firsts[:200]) == 200
        raced_results = firsts[200:]
        assert sum(not r.duplicate for r in raced_results) == 1  # one stored it; the others see it stored
        assert len({r.message_ids for r in raced_results}) == 1
        (stats,) = await store.run(units.stats)
        assert stats.pending == 201
    finally:
        store.close()


async def test_a_lost_connection_answers_unavailable_and_the_worker_takes_another(pg_dsn: str) -> None:
    name = f"lienthong-test-{secrets.token_hex(4)}"
    store = open_store(f"{pg_dsn}&application_name={name}", size=2)
    try:
        assert await store.run(units.stats) == []
        with psycopg.connect(stores_dsn(pg_dsn), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                (name,),
            ).fetchone()
        assert killed == (2,)
        failures = 0
        for _ in range(6):  # each worker finds its connection lost once, then works on a new one
            try:
                await store.run(units.stats)
            except StoreUnavailable:
                failures += 1
        assert failures <= 2
        assert await store.run(units.stats) == []
        assert store.healthy
        assert store.pid is None
    finally:
        store.close()
    assert store.healthy  # closed on purpose is not a failure


async def test_a_lost_connection_ends_the_store_process_and_a_new_one_takes_over(pg_dsn: str) -> None:
    name = f"lienthong-test-{secrets.token_hex(4)}"
    store = Store(ProcessRunner(functools.partial(pg.open_backend, f"{pg_dsn}&application_name={name}")))
    store.open()
    try:
        assert await store.run(units.stats) == []
        first = store.pid
        with psycopg.connect(stores_dsn(pg_dsn), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,)
            )
        with pytest.raises(StoreError):  # the call that finds the connection gone (or the process ended)
            await store.run(units.stats)
        for _ in range(50):  # until the parent has seen the process end
            try:
                assert await store.run(units.stats) == []
                break
            except StoreUnavailable:
                await asyncio.sleep(0.05)
        assert store.pid not in (None, first)
        assert await store.run(units.stats) == []
    finally:
        store.close()


def stores_dsn(dsn: str) -> str:
    """The server's DSN without the test schema's options."""
    return dsn.split("?", 1)[0]


def test_a_first_start_creates_the_schema_at_sqlites_version(pg_dsn: str) -> None:
    assert pg.SCHEMA_VERSION == sqlite.SCHEMA_VERSION
    assert pg.schema_version(pg_dsn) is None
    open_store(pg_dsn).close()  # init=False: an empty database is a first start
    assert pg.schema_version(pg_dsn) == pg.SCHEMA_VERSION


def test_upgrade_creates_an_empty_database_and_then_has_nothing_to_do(pg_dsn: str) -> None:
    assert pg.upgrade(pg_dsn) == (None, pg.SCHEMA_VERSION)
    assert pg.upgrade(pg_dsn) == (pg.SCHEMA_VERSION, pg.SCHEMA_VERSION)
    assert pg.schema_version(pg_dsn) == pg.SCHEMA_VERSION


def test_nodes_starting_together_migrate_once(pg_dsn: str) -> None:
    results: list[tuple[int | None, int]] = []
    threads = [threading.Thread(target=lambda: results.append(pg.upgrade(pg_dsn))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    v = pg.SCHEMA_VERSION
    assert sorted(results, key=str) == [(v, v), (v, v), (v, v), (None, v)]
    with psycopg.connect(pg_dsn) as connection:
        assert connection.execute("SELECT count(*) FROM schema_version").fetchone() == (1,)


@pytest.mark.parametrize(
    ("version", "refusal"),
    [
        (99, rf"99, newer than this lienthong knows \({pg.SCHEMA_VERSION}\)"),
        (3, "no PostgreSQL store of version 3"),
    ],
)
def test_a_schema_of_a_version_we_cannot_bring_to_ours_is_refused(
    pg_dsn: str, version: int, refusal: str
) -> None:
    pg.upgrade(pg_dsn)
    with psycopg.connect(pg_dsn) as connection:
        connection.execute("UPDATE schema_version SET version = %s", (version,))
    store = Store(pg.PostgresPool(pg_dsn, size=1, init=True).runner())
    with pytest.raises(StoreError, match=refusal):
        store.open()
    store.close()
    assert pg.schema_version(pg_dsn) == version  # left as it was


def test_a_search_path_with_no_schema_to_create_in_is_a_store_error(pg_dsn: str) -> None:
    nowhere = f"{stores_dsn(pg_dsn)}?options=-csearch_path%3Dnowhere_{secrets.token_hex(4)}"
    with pytest.raises(StoreError, match="cannot create or upgrade the PostgreSQL store: no schema"):
        pg.upgrade(nowhere)
    assert pg.schema_version(nowhere) is None


def test_no_server_is_store_unavailable() -> None:
    pool = pg.PostgresPool("postgresql://postgres@127.0.0.1:1/postgres", size=1, timeout_s=1)
    with pytest.raises(StoreUnavailable, match="cannot connect to PostgreSQL"):
        pool.runner().start()


def test_a_backend_refuses_a_database_without_the_schema(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as connection, pytest.raises(StoreError, match="db upgrade"):
        pg.PostgresBackend(connection)


def test_two_nodes_settling_one_payment_at_once_confirm_it_once(backends: list[pg.PostgresBackend]) -> None:
    first, second, reader = backends
    dossier = orjson.dumps({"code": "HS-1"}).decode()
    reader.begin()
    units.save_payment(
        reader, PaymentRecord("REF-1", "HS-1", "U1", 50_000, dossier, "https://pay", "initiated", "", NOW)
    )
    reader.commit()

    def settlement(transaction: str) -> Settlement:
        claim = Claim("vcb", transaction, "REF-1", 50_000, "paid", "2026-01-01T00:00:00+07:00")
        record = CallbackRecord(NOW, "vcb", "REF-1", transaction, "", "paid")
        event = {
            "event_id": f"lienthong:paid:vcb:{transaction}",
            "type": "payment.confirmed",
            "occurred_at": "2026-01-01T00:00:00+07:00",
            "unit_code": "U1",
            "dossier": {"code": "HS-1"},
        }
        return Settlement(claim, record, item(event, "province"))

    first.begin()
    assert units.settle_payment(first, settlement("T1"), NOW) == "accepted"  # not committed yet
    verdicts: list[str] = []

    def other_node() -> None:
        second.begin()
        verdicts.append(units.settle_payment(second, settlement("T2"), NOW))
        second.commit()

    racer = threading.Thread(target=other_node)
    racer.start()
    racer.join(0.5)
    assert racer.is_alive(), "the second node judged the payment while the first held it"
    first.commit()
    racer.join(10)
    assert verdicts == ["duplicate_payment"]
    reader.begin()
    stored = units.payment(reader, "REF-1")
    confirmed = [units.stored_event(reader, f"lienthong:paid:vcb:{t}") for t in ("T1", "T2")]
    findings = units.payment_findings(reader, 10)
    reader.commit()
    assert stored is not None
    assert (stored.status, stored.transaction_id) == ("paid", "T1")
    assert confirmed[0] is not None
    assert confirmed[1] is None  # one payment.confirmed, one receipt
    assert [f.transaction_id for f in findings] == ["T2"]
