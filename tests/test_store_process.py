"""The store in its own process (store.process): calls, errors, and what happens when either side dies."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import orjson
import pytest

from lienthong.bus.envelope import parse_body
from lienthong.bus.ingest import MessageIds, ingest_item
from lienthong.errors import IdempotencyConflict, MappingError, StoreError, StoreUnavailable
from lienthong.model import IngestItem, LedgerEntry, MessageView, Outcome, PlannedMessage, StoredEvent
from lienthong.sandbox.dossiers import generate
from lienthong.serving import new_event_loop
from lienthong.store import Tx, units
from lienthong.store.process import ProcessRunner
from lienthong.store.runner import Bound, Store, ThreadRunner
from lienthong.store.sqlite import SqliteBackend

NOW = 1_700_000_000.0
NOW_MS = int(NOW * 1000)
new_id = MessageIds()
STATS = Bound(units.stats, (), {})


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[ProcessRunner]:
    c: ProcessRunner = ProcessRunner(partial(SqliteBackend, tmp_path / "db"))
    c.start()
    yield c
    c.close()


def items(count: int, *, seed: int = 1) -> list[IngestItem]:
    events = [stream.events[0] for stream in generate(count, seed=seed)]
    parsed, _ = parse_body(orjson.dumps({"events": events}), dossier_code_field="code", max_events=count)
    return [ingest_item(p, (PlannedMessage(new_id(), "portal", "op"),)) for p in parsed]


@pytest.mark.parametrize("in_process", [True, False], ids=["process", "thread"])
async def test_a_store_ingests_claims_and_completes_on_either_runner(
    tmp_path: Path, in_process: bool
) -> None:
    open_backend = partial(SqliteBackend, tmp_path / "db")
    store = Store(ProcessRunner(open_backend) if in_process else ThreadRunner(open_backend))
    store.open()
    try:
        (accepted,) = await store.run(units.ingest, [items(5)], NOW_MS)
        assert not isinstance(accepted, IdempotencyConflict)
        claimed = await store.run(units.claim, NOW_MS, 10, 60_000)
        assert sorted(c.message_id for c in claimed) == sorted(r.message_ids[0] for r in accepted)
        outcomes = [Outcome(c.message_id, "delivered", 1, NOW_MS, NOW_MS, None) for c in claimed]
        await store.run(units.complete, outcomes)
        assert await store.run(units.stats) == []  # nothing pending, in flight or dead
    finally:
        store.close()


async def test_an_error_raised_in_the_store_process_reaches_the_caller_as_itself(tmp_path: Path) -> None:
    store = Store(ProcessRunner(partial(SqliteBackend, tmp_path / "db")))
    store.open()
    try:
        first = items(1)
        await store.run(units.ingest, [first], NOW_MS)
        changed = first[0]._replace(event=first[0].event._replace(payload_sha256="0" * 64))
        (answer,) = await store.run(units.ingest, [[changed]], NOW_MS)
        assert isinstance(answer, IdempotencyConflict)
        assert answer.event_id == first[0].event.event_id
    finally:
        store.close()


def test_a_store_that_cannot_open_fails_start_with_the_store_s_own_message(tmp_path: Path) -> None:
    runner: ProcessRunner = ProcessRunner(partial(SqliteBackend, tmp_path / "missing" / "db"))
    with pytest.raises(StoreError, match="cannot open the SQLite store at .*missing"):
        runner.start()


async def test_an_answer_that_cannot_cross_fails_only_its_own_call(
    runner: ProcessRunner,
) -> None:
    # A repository holds the connection, which cannot be pickled: the caller gets a StoreError, and the
    # store carries on.
    with pytest.raises(StoreError, match="result could not be sent back"):
        await runner.call(events_repository)
    assert await runner.call(STATS) == []


async def test_when_the_store_process_dies_calls_fail_with_its_exit_code(
    runner: ProcessRunner,
) -> None:
    assert await runner.call(STATS) == []
    assert runner._process is not None
    os.kill(runner._process.pid, signal.SIGKILL)
    with pytest.raises(StoreError, match=r"stopped unexpectedly \(exit code -9\)"):
        await _call_until_it_fails(runner)


async def test_a_killed_store_process_is_started_again_and_keeps_what_it_committed(tmp_path: Path) -> None:
    clock = [0.0]
    store = Store(ProcessRunner(partial(SqliteBackend, tmp_path / "db"), monotonic=lambda: clock[0]))
    store.open()
    try:
        await store.run(units.ingest, [items(3)], NOW_MS)
        first = store.pid
        assert first is not None
        clock[0] += 60  # it has been up a while
        os.kill(first, signal.SIGKILL)
        with pytest.raises(StoreUnavailable, match="exit code -9"):
            await _stats_until_it_fails(store)
        (stats,) = await store.run(units.stats)  # the next call starts a new process
        assert stats.pending == 3
        assert store.pid not in (None, first)
        assert store.healthy
    finally:
        store.close()


async def test_a_store_process_that_cannot_start_again_makes_the_node_unhealthy(tmp_path: Path) -> None:
    clock = [0.0]
    runner = ProcessRunner(
        partial(SqliteBackend, tmp_path / "db"), unhealthy_after=2, monotonic=lambda: clock[0]
    )
    runner.start()
    try:
        assert await runner.call(STATS) == []
        (tmp_path / "db").rename(tmp_path / "moved")  # the new process must refuse: a store ran here
        assert runner._process is not None
        clock[0] += 60  # it has been up a while
        os.kill(runner._process.pid, signal.SIGKILL)
        with pytest.raises(StoreUnavailable):
            await _call_until_it_fails(runner)
        with pytest.raises(StoreUnavailable, match="could not be started again: no store at"):
            await runner.call(STATS)
        assert runner.healthy  # one failed start
        with pytest.raises(StoreUnavailable, match="could not be started again"):
            await runner.call(STATS)  # within the backoff: no new attempt
        clock[0] += 60
        with pytest.raises(StoreUnavailable, match="could not be started again"):
            await runner.call(STATS)
        assert not runner.healthy  # two failed starts in a row
        (tmp_path / "moved").rename(tmp_path / "db")
        clock[0] += 60
        assert await runner.call(STATS) == []  # started again
        assert not runner.healthy  # not yet: it must stay up a while first
        clock[0] += 60
        assert await runner.call(STATS) == []
        assert runner.healthy
    finally:
        runner.close()


async def test_a_store_process_that_dies_soon_after_each_start_is_not_spawned_at_every_call(
    tmp_path: Path,
) -> None:
    clock = [0.0]
    runner = ProcessRunner(
        partial(SqliteBackend, tmp_path / "db"), unhealthy_after=3, monotonic=lambda: clock[0]
    )
    runner.start()
    pids = []
    try:
        for _ in range(3):
            assert await runner.call(STATS) == []
            assert runner._process is not None
            pids.append(runner._process.pid)
            os.kill(runner._process.pid, signal.SIGKILL)  # dies at once, each time
            with pytest.raises(StoreUnavailable):
                await _call_until_it_fails(runner)
            with pytest.raises(StoreUnavailable):
                await runner.call(STATS)  # within the backoff: no new process
            assert runner._process.pid == pids[-1]
            clock[0] += 60
        assert not runner.healthy  # three quick deaths in a row
        assert len(set(pids)) == 3
    finally:
        runner.close()


async def test_a_caller_giving_up_at_its_deadline_does_not_cancel_a_start(tmp_path: Path) -> None:
    clock = [0.0]
    runner = ProcessRunner(partial(SlowOpen, tmp_path / "db"), unhealthy_after=1, monotonic=lambda: clock[0])
    store = Store(runner, deadline_s=0.3)
    store.open()
    try:
        assert runner._process is not None
        clock[0] += 60  # it has been up a while
        os.kill(runner._process.pid, signal.SIGKILL)
        with pytest.raises(StoreUnavailable):
            await _stats_until_it_fails(store)
        with pytest.raises(StoreUnavailable, match="did not answer within"):
            await store.run(units.stats)  # the start takes longer than the deadline
        await asyncio.sleep(2)  # the start finishes all the same
        assert await store.run(units.stats) == []
    finally:
        store.close()


async def test_a_call_the_store_process_cannot_load_fails_alone(
    runner: ProcessRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "parent_only.py").write_text("def unit(tx):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # importable here, not in the store's process
    import parent_only  # type: ignore[import-not-found]  # noqa: PLC0415

    calls = [runner.call(parent_only.unit), runner.call(STATS)]
    failed, stats = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(failed, StoreError)
    assert "cannot load this call" in str(failed)
    assert stats == []


async def _stats_until_it_fails(store: Store) -> None:
    for _ in range(100):  # until the loop has read the end of the socket
        await store.run(units.stats)
        await asyncio.sleep(0.01)


async def _call_until_it_fails(runner: ProcessRunner) -> None:
    for _ in range(100):  # until the loop has read the end of the socket
        await runner.call(STATS)
        await asyncio.sleep(0.01)


def test_a_runner_belongs_to_the_loop_that_first_called_it(tmp_path: Path) -> None:
    runner: ProcessRunner = ProcessRunner(partial(SqliteBackend, tmp_path / "db"))
    runner.start()
    first = new_event_loop()
    try:
        assert first.run_until_complete(runner.call(STATS)) == []
        with pytest.raises(StoreError, match="bound to another event loop"):
            asyncio.run(runner.call(STATS))
        runner.close()
        first.run_until_complete(asyncio.sleep(0))  # let the loop finish closing the socket
    finally:
        first.close()
    assert runner._process is not None
    assert runner._process.returncode == 0


def test_a_closed_runner_refuses_calls(tmp_path: Path) -> None:
    runner: ProcessRunner = ProcessRunner(partial(SqliteBackend, tmp_path / "db"))
    runner.start()
    runner.close()
    runner.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        asyncio.run(runner.call(STATS))


def test_the_store_process_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import functools, time
                from lienthong.store.sqlite import SqliteBackend
                from lienthong.store.process import ProcessRunner
                c = ProcessRunner(functools.partial(SqliteBackend, {str(tmp_path / "db")!r}))
                c.start()
                print(c._process.pid, flush=True)
                time.sleep(60)
            """),
        ],
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    with parent.stdout:
        child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child), "the store process outlived its parent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # An exited child of a killed parent is reaped by init; until then it is a zombie, which is not alive.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


async def test_calls_after_close_are_refused_even_once_connected(tmp_path: Path) -> None:
    runner: ProcessRunner = ProcessRunner(partial(SqliteBackend, tmp_path / "db"))
    runner.start()
    assert await runner.call(STATS) == []
    runner.close()
    with pytest.raises(StoreError, match="closed"):
        await runner.call(STATS)


async def test_a_call_that_cannot_be_pickled_fails_at_once_and_the_store_carries_on(
    runner: ProcessRunner,
) -> None:
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        await runner.call(lambda tx: tx.outbox.stats())
    assert await runner.call(STATS) == []


class SlowOpen(SqliteBackend):
    """A backend that takes a second to open (loaded by the store's process from this module)."""

    def __init__(self, path: Path) -> None:
        time.sleep(1)
        super().__init__(path)


def events_repository(tx: Tx) -> object:
    return tx.events


class RaisesMappingError:
    """Raises an error that pickles but cannot be unpickled (keyword-only arguments), as a store might."""

    def __call__(self, tx: Tx) -> None:
        raise MappingError("boom", mapping="m", field="f")


async def test_an_error_that_cannot_cross_comes_back_as_a_store_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # so the store's process finds this class
    runner: ProcessRunner = ProcessRunner(partial(SqliteBackend, tmp_path / "db"))
    runner.start()
    try:
        calls = [runner.call(RaisesMappingError()), runner.call(STATS)]
        failed, stats = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(failed, StoreError)
        assert str(failed) == "MappingError: f: boom [mapping m]"
        assert stats == []  # the other call of the batch is answered
    finally:
        runner.close()


async def test_an_ingest_crosses_to_the_store_process_whole(tmp_path: Path) -> None:
    """The records of an ingest cross as plain tuples (model.reduce_ingest_item) and are rebuilt in the
    child: every field of the event, its messages and its ledger entry is stored as a thread stores it."""
    events = [stream.events[-1] for stream in generate(3, seed=7)]
    parsed, _ = parse_body(orjson.dumps({"events": events}), dossier_code_field="code", max_events=3)
    batch = [
        ingest_item(
            p,
            (PlannedMessage(f"m-{n}a", "portal", "op", "sync", "h1"), PlannedMessage(f"m-{n}b", "emc", "x")),
            "caller",
        )
        for n, p in enumerate(parsed)
    ]
    batch[0] = batch[0]._replace(
        ledger=batch[0].ledger._replace(result_sha256=("a" * 64, "b" * 64), results=2)
    )
    seen: list[tuple[list[StoredEvent | None], list[LedgerEntry | None], list[MessageView | None]]] = []
    for name, runner in (
        ("process", ProcessRunner(partial(SqliteBackend, tmp_path / "p"))),
        ("thread", ThreadRunner(partial(SqliteBackend, tmp_path / "t"))),
    ):
        store = Store(runner)
        store.open()
        try:
            (answer,) = await store.run(units.ingest, [batch], NOW_MS)
            assert not isinstance(answer, IdempotencyConflict), name
            stored = [await store.run(units.stored_event, i.event.event_id) for i in batch]
            ledger = [await store.run(units.ledger_entry, i.event.dossier_code) for i in batch]
            messages = [await store.run(units.message, d.message_id) for i in batch for d in i.deliveries]
            seen.append((stored, ledger, messages))
        finally:
            store.close()
    assert seen[0] == seen[1]
    _, (first, *_), (message, *_) = seen[0]
    assert first is not None
    assert (first.result_sha256, first.results) == (("a" * 64, "b" * 64), 2)
    assert message is not None
    assert (message.mapping, message.mapping_hash, message.caller) == ("sync", "h1", "caller")
