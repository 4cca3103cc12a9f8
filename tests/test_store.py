"""What only some stores do: group commit on a runner, SQLite's schema versions, its one-node lock, and
refusing a database file that is missing or was replaced. The shared contract is test_store_contract.py."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from lienthong.bus.envelope import parse_body
from lienthong.bus.ingest import MessageIds, ingest_item
from lienthong.cli import main as cli_main
from lienthong.errors import StoreError, StoreMissing, StoreUnavailable
from lienthong.model import IngestItem, IngestResult, PlannedMessage
from lienthong.sandbox.dossiers import generate
from lienthong.store import Tx, units
from lienthong.store.runner import Bound, Store, ThreadRunner
from lienthong.store.sqlite import SCHEMA_VERSION, SqliteBackend, lock_file

NOW = 1_700_000_000_000
new_id = MessageIds()


def item(event: dict[str, Any]) -> IngestItem:
    (parsed,), _ = parse_body(orjson.dumps(event), dossier_code_field="code", max_events=1)
    return ingest_item(parsed, (PlannedMessage(new_id(), "portal", "op"),))


def ingest_one(tx: Tx, one: IngestItem) -> list[IngestResult]:
    (answer,) = units.ingest(tx, [[one]], NOW)
    assert not isinstance(answer, Exception)
    return answer


class Boom(Exception):
    pass


def ingest_then_fail(tx: Tx, one: IngestItem) -> list[IngestResult]:
    ingest_one(tx, one)
    raise Boom


class CountingBackend(SqliteBackend):
    commits = 0

    def commit(self) -> None:
        CountingBackend.commits += 1
        super().commit()


async def test_concurrent_units_share_transactions(tmp_path: Path) -> None:
    store = Store(ThreadRunner(partial(CountingBackend, tmp_path / "db")))
    store.open()
    CountingBackend.commits = 0
    try:
        calls = [store.run(ingest_one, item(st.events[0])) for st in generate(50)]
        await asyncio.gather(*calls)
    finally:
        store.close()
    assert 0 < CountingBackend.commits < len(calls)


async def test_a_unit_that_raises_fails_alone(tmp_path: Path) -> None:
    store = Store(ThreadRunner(partial(SqliteBackend, tmp_path / "db")))
    store.open()
    streams = generate(20)
    try:
        calls = [store.run(ingest_one, item(st.events[0])) for st in streams[1:]]
        calls.insert(7, store.run(ingest_then_fail, item(streams[0].events[0])))
        results = await asyncio.gather(*calls, return_exceptions=True)
        claimed = await store.run(units.claim, NOW, 100, 60_000)
    finally:
        store.close()
    failed = results.pop(7)
    assert isinstance(failed, StoreError)
    assert isinstance(failed.__cause__, Boom)
    assert all(not isinstance(r, BaseException) for r in results)
    assert sorted(c.dossier_code for c in claimed) == sorted(st.code for st in streams[1:])


async def test_a_closed_runner_refuses_calls(tmp_path: Path) -> None:
    runner = ThreadRunner(partial(SqliteBackend, tmp_path / "db"))
    runner.start()
    runner.close()
    runner.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        await runner.call(Bound(units.stats, (), {}))


def test_a_runner_whose_backend_cannot_open_raises_at_start(tmp_path: Path) -> None:
    runner = ThreadRunner(partial(SqliteBackend, tmp_path / "missing" / "db"))
    with pytest.raises(StoreError, match="cannot open the SQLite store"):
        runner.start()


class Hung:
    """A runner whose calls never come back, as on a frozen disk."""

    pid = None
    healthy = True
    commits = 0

    def start(self) -> None:
        pass

    async def call(self, fn: Any) -> Any:
        await asyncio.Event().wait()

    def close(self) -> None:
        pass


async def test_a_call_past_its_deadline_is_store_unavailable() -> None:
    store = Store(Hung(), deadline_s=0.05)
    with pytest.raises(StoreUnavailable, match="did not answer within 0.05 s"):
        await store.run(units.stats)


class AnswersFromAThread(Hung):
    """A runner that answers from another thread after ``after_s``, as the thread and process runners
    answer (``call_soon_threadsafe``)."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s

    async def call(self, fn: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()

        def answer() -> None:
            time.sleep(self.after_s)
            loop.call_soon_threadsafe(future.set_result, "committed")

        threading.Thread(target=answer, daemon=True).start()
        return await future


async def test_an_answer_in_before_the_deadline_is_handled_is_returned_not_a_timeout() -> None:
    """A busy loop handles the store's answer (in at 0.15 s) and the deadline (0.2 s) in the same pass: the
    unit committed, so its result is the answer, not a 503 that sends the caller back (found in review:
    ``asyncio.timeout`` cancelled the call after its result was in)."""
    store = Store(AnswersFromAThread(after_s=0.15), deadline_s=0.2)
    asyncio.get_running_loop().call_later(0.1, time.sleep, 0.2)  # the loop is busy from 0.1 s to 0.3 s
    answer: object = await store.run(units.stats)
    assert answer == "committed"


def test_a_store_written_by_a_newer_schema_is_refused(tmp_path: Path) -> None:
    SqliteBackend(tmp_path / "db").close()
    with sqlite3.connect(tmp_path / "db") as db:
        db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="schema version is 99"):
        SqliteBackend(tmp_path / "db")


def test_a_second_node_on_the_same_file_is_refused_naming_the_file_and_the_holder(tmp_path: Path) -> None:
    first = SqliteBackend(tmp_path / "db", node="node-a pid 1")
    try:
        with pytest.raises(StoreError, match=r"store .*db is in use by another node \(node-a pid 1\)"):
            SqliteBackend(tmp_path / "db", node="node-b pid 2")
    finally:
        first.close()
    SqliteBackend(tmp_path / "db", node="node-b pid 2").close()  # free once the first has closed


def test_a_second_node_through_a_symlink_to_the_file_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "lienthong.db").symlink_to(tmp_path / "data" / "lienthong.db")
    first = SqliteBackend(tmp_path / "data" / "lienthong.db", node="node-a pid 1")
    try:
        with pytest.raises(StoreError, match=r"in use by another node \(node-a pid 1\)"):
            SqliteBackend(tmp_path / "srv" / "lienthong.db", node="node-b pid 2")
    finally:
        first.close()


def test_a_removed_database_is_not_replaced_by_an_empty_one_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "lienthong.db"
    SqliteBackend(path).close()  # a first start creates it
    assert lock_file(path).exists()
    for leftover in tmp_path.glob("lienthong.db*"):  # rm lienthong.db*
        leftover.unlink()
    with pytest.raises(StoreMissing, match=r"no store at .*lienthong.db, but a store ran there before"):
        SqliteBackend(path)
    assert not path.exists()
    SqliteBackend(path, init=True).close()  # lienthong db init
    SqliteBackend(path).close()


async def test_a_database_removed_under_a_running_store_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "lienthong.db"
    store = Store(ThreadRunner(partial(SqliteBackend, path)))
    store.open()
    try:
        (a, b) = generate(2)
        await store.run(ingest_one, item(a.events[0]))
        for leftover in tmp_path.glob("lienthong.db*"):
            leftover.unlink()
        with pytest.raises(StoreUnavailable, match="was removed or replaced under the running store"):
            await store.run(ingest_one, item(b.events[0]))
    finally:
        store.close()


def test_db_upgrade_migrates_and_db_init_recreates_a_removed_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lienthong.db"
    config = tmp_path / "lienthong.yaml"
    config.write_text(f"store: {{path: {str(path)!r}}}\n", encoding="utf-8")
    assert cli_main(["db", "upgrade", str(config)]) == 0
    assert f"created the store at {path} (schema version {SCHEMA_VERSION})" in capsys.readouterr().out
    with sqlite3.connect(path) as db:
        db.execute("DROP INDEX outbox_leased")
        db.execute("ALTER TABLE outbox DROP COLUMN lease_until_ms")
        db.execute("UPDATE schema_version SET version = 3")
    assert cli_main(["db", "upgrade", str(config)]) == 0
    assert f"from schema version 3 to {SCHEMA_VERSION}" in capsys.readouterr().out
    assert cli_main(["db", "upgrade", str(config)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    for leftover in tmp_path.glob("lienthong.db*"):
        leftover.unlink()
    assert cli_main(["db", "upgrade", str(config)]) == 3  # the store cannot be used
    assert "a store ran there before" in capsys.readouterr().err
    assert cli_main(["db", "init", str(config)]) == 0
    assert "created the store" in capsys.readouterr().out


async def waiting(store: Store) -> int:
    """Messages pending or in flight; a stalled store counts as still waiting."""
    try:
        return sum(s.pending + s.inflight for s in await store.run(units.stats))
    except StoreUnavailable:
        return 1


class StallsOnce(SqliteBackend):
    """A commit that hangs once for a second, as a stalled disk, then the disk is back."""

    stalled = False

    def commit(self) -> None:
        if StallsOnce.armed and not StallsOnce.stalled:
            StallsOnce.stalled = True
            time.sleep(1.0)
        super().commit()

    armed = False


async def test_claims_of_a_cycle_that_ran_past_its_deadline_are_freed_by_the_next(
    tmp_path: Path, run_node: Any
) -> None:
    from lienthong.sandbox.dossiers import generate as streams_of  # noqa: PLC0415

    StallsOnce.stalled, StallsOnce.armed = False, False
    running = await run_node(
        store={
            "path": str(tmp_path / "stall.db"),
            "synchronous": "normal",
            "deadline_s": 0.3,
            "process": False,
        }
    )
    node = running.node
    await node.dispatcher.stop(1)  # replaced below by a dispatcher on the stalling store
    store = Store(ThreadRunner(partial(StallsOnce, tmp_path / "stall2.db")), deadline_s=0.3)
    store.open()
    try:
        dispatcher = type(node.dispatcher)(
            store, node.dispatcher._mapper, node.adapters, [], clock=time.time, poll_interval_s=0.05
        )
        events = [s.events[0] for s in streams_of(5, seed=11)]
        (parsed, _) = parse_body(orjson.dumps({"events": events}), dossier_code_field="code", max_events=9)
        ingestor = type(node.ingestor)(store, node.routes, node.metrics, on_accepted=dispatcher.wake)
        await ingestor.accept(parsed, "tests")
        StallsOnce.armed = True  # the first cycle's commit stalls past the store's deadline
        task = asyncio.create_task(dispatcher.run())
        started = time.monotonic()
        while time.monotonic() - started < 10 and await waiting(store):
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        await dispatcher.stop(1)
        task.cancel()
        assert StallsOnce.stalled
        assert elapsed < 10  # not after the 300 s lease: the next cycle freed the stalled one's claims
        assert sum(s.pending + s.inflight for s in await store.run(units.stats)) == 0
    finally:
        store.close()
