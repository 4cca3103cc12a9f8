"""The store in its own process (bus.storeproc): calls, errors, and what happens when either side dies."""

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
from operator import attrgetter, methodcaller
from pathlib import Path

import orjson
import pytest

from lienthong.bus.envelope import parse_body
from lienthong.bus.ingest import MessageIds, ingest_item
from lienthong.bus.outbox import Outbox
from lienthong.bus.sqlite import SqliteOutbox
from lienthong.bus.store import OutboxStore
from lienthong.bus.storeproc import ProcessCommitter
from lienthong.errors import IdempotencyConflict, MappingError, StoreError
from lienthong.model import IngestItem, Outcome, PlannedMessage
from lienthong.sandbox.dossiers import generate
from lienthong.serving import new_event_loop

NOW = 1_700_000_000.0
new_id = MessageIds()


@pytest.fixture
async def committer(tmp_path: Path) -> AsyncIterator[ProcessCommitter[OutboxStore]]:
    c: ProcessCommitter[OutboxStore] = ProcessCommitter(partial(SqliteOutbox, tmp_path / "db"))
    c.start()
    yield c
    c.close()


def items(count: int, *, seed: int = 1) -> list[IngestItem]:
    events = [stream.events[0] for stream in generate(count, seed=seed)]
    parsed, _ = parse_body(orjson.dumps({"events": events}), dossier_code_field="code", max_events=count)
    return [ingest_item(p, (PlannedMessage(new_id(), "portal", "op"),)) for p in parsed]


@pytest.mark.parametrize("in_process", [True, False], ids=["process", "thread"])
async def test_an_outbox_ingests_claims_and_completes_on_either_runner(
    tmp_path: Path, in_process: bool
) -> None:
    outbox = Outbox(partial(SqliteOutbox, tmp_path / "db"), clock=lambda: NOW, in_process=in_process)
    outbox.open()
    try:
        accepted = await outbox.ingest(items(5))
        claimed = await outbox.claim(10)
        assert sorted(c.message_id for c in claimed) == sorted(r.message_ids[0] for r in accepted)
        now_ms = int(NOW * 1000)
        await asyncio.gather(
            *(outbox.complete(Outcome(c.message_id, "delivered", 1, now_ms, now_ms, None)) for c in claimed)
        )
        assert await outbox.stats() == []  # nothing pending, in flight or dead
    finally:
        outbox.close()


async def test_an_error_raised_in_the_store_process_reaches_the_caller_as_itself(tmp_path: Path) -> None:
    outbox = Outbox(partial(SqliteOutbox, tmp_path / "db"), clock=lambda: NOW, in_process=True)
    outbox.open()
    try:
        first = items(1)
        await outbox.ingest(first)
        changed = first[0]._replace(event=first[0].event._replace(payload_sha256="0" * 64))
        with pytest.raises(IdempotencyConflict) as caught:
            await outbox.ingest([changed])
        assert caught.value.event_id == first[0].event.event_id
    finally:
        outbox.close()


def test_a_store_that_cannot_open_fails_start_with_the_store_s_own_message(tmp_path: Path) -> None:
    committer: ProcessCommitter[OutboxStore] = ProcessCommitter(
        partial(SqliteOutbox, tmp_path / "missing" / "db")
    )
    with pytest.raises(StoreError, match="cannot open the SQLite store at .*missing"):
        committer.start()


async def test_an_answer_that_cannot_cross_fails_only_its_own_call(
    committer: ProcessCommitter[OutboxStore],
) -> None:
    # A sqlite3 connection cannot be pickled: the caller gets a StoreError, and the store carries on.
    with pytest.raises(StoreError, match="result could not be sent back"):
        await committer.call(attrgetter("_db"))
    assert await committer.call(methodcaller("stats")) == []


async def test_when_the_store_process_dies_calls_fail_with_its_exit_code(
    committer: ProcessCommitter[OutboxStore],
) -> None:
    assert await committer.call(methodcaller("stats")) == []
    assert committer._process is not None
    os.kill(committer._process.pid, signal.SIGKILL)
    with pytest.raises(StoreError, match=r"stopped unexpectedly \(exit code -9\)"):
        await _call_until_it_fails(committer)


async def _call_until_it_fails(committer: ProcessCommitter[OutboxStore]) -> None:
    for _ in range(100):  # until the loop has read the end of the socket
        await committer.call(methodcaller("stats"))
        await asyncio.sleep(0.01)


def test_a_committer_belongs_to_the_loop_that_first_called_it(tmp_path: Path) -> None:
    committer: ProcessCommitter[OutboxStore] = ProcessCommitter(partial(SqliteOutbox, tmp_path / "db"))
    committer.start()
    first = new_event_loop()
    try:
        assert first.run_until_complete(committer.call(methodcaller("stats"))) == []
        with pytest.raises(StoreError, match="bound to another event loop"):
            asyncio.run(committer.call(methodcaller("stats")))
        committer.close()
        first.run_until_complete(asyncio.sleep(0))  # let the loop finish closing the socket
    finally:
        first.close()
    assert committer._process is not None
    assert committer._process.returncode == 0


def test_a_closed_committer_refuses_calls(tmp_path: Path) -> None:
    committer: ProcessCommitter[OutboxStore] = ProcessCommitter(partial(SqliteOutbox, tmp_path / "db"))
    committer.start()
    committer.close()
    committer.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        asyncio.run(committer.call(methodcaller("stats")))


def test_the_store_process_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import functools, time
                from lienthong.bus.sqlite import SqliteOutbox
                from lienthong.bus.storeproc import ProcessCommitter
                c = ProcessCommitter(functools.partial(SqliteOutbox, {str(tmp_path / "db")!r}))
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
    committer: ProcessCommitter[OutboxStore] = ProcessCommitter(partial(SqliteOutbox, tmp_path / "db"))
    committer.start()
    assert await committer.call(methodcaller("stats")) == []
    committer.close()
    with pytest.raises(StoreError, match="closed"):
        await committer.call(methodcaller("stats"))


async def test_a_call_that_cannot_be_pickled_fails_at_once_and_the_store_carries_on(
    committer: ProcessCommitter[OutboxStore],
) -> None:
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        await committer.call(lambda store: store.stats())
    assert await committer.call(methodcaller("stats")) == []


class RaisesMappingError:
    """Raises an error that pickles but cannot be unpickled (keyword-only arguments), as a store might."""

    def __call__(self, store: OutboxStore) -> None:
        raise MappingError("boom", mapping="m", field="f")


async def test_an_error_that_cannot_cross_comes_back_as_a_store_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # so the store's process finds this class
    committer: ProcessCommitter[OutboxStore] = ProcessCommitter(partial(SqliteOutbox, tmp_path / "db"))
    committer.start()
    try:
        calls = [committer.call(RaisesMappingError()), committer.call(methodcaller("stats"))]
        failed, stats = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(failed, StoreError)
        assert str(failed) == "MappingError: f: boom [mapping m]"
        assert stats == []  # the other call of the batch is answered
    finally:
        committer.close()
