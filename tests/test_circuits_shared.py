"""Circuit breakers shared by the nodes of one store (issue 14 §3): the store applies a node's change only
if it still holds, grants one probe for every node, and lets only that probe's end close or reopen the
circuit. The rules on every backend; two nodes on one PostgreSQL, each with its own dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import stores
from lienthong.bus.circuits import State
from lienthong.model import CircuitChange, CircuitRow
from lienthong.store import Store, units
from test_circuits import DownPeer, Node, build, statuses

NOW = 1_800_000_000_000
DOWN = "province"


async def change(store: Store, now: int, *changes: CircuitChange) -> dict[str, CircuitRow]:
    cycle = await store.run(units.settle_and_claim, [], now, 0, 0, circuits=list(changes))
    return {row.destination: row for row in cycle.circuits}


def trip(open_for_ms: int = 30_000, destination: str = DOWN) -> CircuitChange:
    return CircuitChange(destination, "trip", None, open_for_ms)


async def test_a_trip_opens_a_closed_circuit_once(store: Store) -> None:
    assert (await change(store, NOW)) == {}  # nothing seen yet: no rows
    rows = await change(store, NOW, trip())
    assert rows[DOWN] == CircuitRow(DOWN, State.OPEN, 30_000, NOW + 30_000, None, NOW)
    rows = await change(store, NOW + 5, trip(60_000))  # another node, a cycle behind, trips it too
    assert rows[DOWN].reopen_at_ms == NOW + 30_000  # already open: unchanged
    assert set(await change(store, NOW, trip(destination="emc"))) == {DOWN, "emc"}
    # A dispatcher without breakers sends no changes (None) and the cycle reads no circuits.
    assert (await store.run(units.settle_and_claim, [], NOW, 0, 0)).circuits == []


async def test_one_probe_is_granted_for_every_node_and_only_once_the_open_time_is_over(store: Store) -> None:
    await change(store, NOW, trip())
    early = await change(store, NOW + 29_999, CircuitChange(DOWN, "want_probe", "m-1"))
    assert (early[DOWN].state, early[DOWN].probe) == (State.OPEN, None)
    rows = await change(
        store,
        NOW + 30_000,
        CircuitChange(DOWN, "want_probe", "m-1"),
        CircuitChange(DOWN, "want_probe", "m-2"),  # a second node asks in the same moment
    )
    assert (rows[DOWN].state, rows[DOWN].probe) == (State.HALF_OPEN, "m-1")
    rows = await change(store, NOW + 30_001, CircuitChange(DOWN, "want_probe", "m-3"))
    assert rows[DOWN].probe == "m-1"


async def test_only_the_probe_s_end_closes_or_reopens_the_circuit(store: Store) -> None:
    await change(store, NOW, trip())
    await change(store, NOW + 30_000, CircuitChange(DOWN, "want_probe", "m-1"))
    rows = await change(store, NOW + 30_001, CircuitChange(DOWN, "probe_passed", "m-2"))  # not the probe
    assert rows[DOWN].state == State.HALF_OPEN
    rows = await change(store, NOW + 30_002, CircuitChange(DOWN, "probe_failed", "m-1", 60_000))
    assert rows[DOWN] == CircuitRow(DOWN, State.OPEN, 60_000, NOW + 90_002, None, NOW + 30_002)
    rows = await change(store, NOW + 30_003, CircuitChange(DOWN, "probe_passed", "m-1"))  # late, repeated
    assert rows[DOWN].state == State.OPEN
    await change(store, NOW + 90_002, CircuitChange(DOWN, "want_probe", "m-4"))
    rows = await change(store, NOW + 90_003, CircuitChange(DOWN, "probe_passed", "m-4"))
    assert rows[DOWN] == CircuitRow(DOWN, State.CLOSED, 0, 0, None, NOW + 90_003)
    rows = await change(store, NOW + 90_004, CircuitChange(DOWN, "probe_failed", "m-4", 60_000))
    assert rows[DOWN].state == State.CLOSED  # a closed circuit opens by a trip only


async def test_a_probe_that_never_ends_gives_way_to_another_after_a_while(store: Store) -> None:
    await change(store, NOW, trip())
    await change(store, NOW + 30_000, CircuitChange(DOWN, "want_probe", "gone"))
    stale = NOW + 30_000 + units.PROBE_STALE_MS
    rows = await change(store, stale - 1, CircuitChange(DOWN, "want_probe", "m-2"))
    assert rows[DOWN].probe == "gone"
    rows = await change(store, stale, CircuitChange(DOWN, "want_probe", "m-2"))
    assert (rows[DOWN].state, rows[DOWN].probe) == (State.HALF_OPEN, "m-2")


async def test_two_nodes_asking_at_once_get_one_probe(pg_dsn: str, tmp_path: Path) -> None:
    """Two stores on one PostgreSQL (two nodes), racing: the row lock makes one grant."""
    a, b = (stores.make_store("postgres", tmp_path, pg_dsn) for _ in range(2))
    for s in (a, b):
        s.open()
    try:
        await change(a, NOW, trip())
        for round_ in range(20):
            now = NOW + 30_000 + round_ * 40_000
            first, second = await asyncio.gather(
                change(a, now, CircuitChange(DOWN, "want_probe", f"a-{round_}")),
                change(b, now, CircuitChange(DOWN, "want_probe", f"b-{round_}")),
            )
            final = await change(a, now)
            assert final[DOWN].probe in (f"a-{round_}", f"b-{round_}")
            # Whichever answered last saw the grant; neither replaced the other's.
            assert {first[DOWN].probe, second[DOWN].probe} <= {final[DOWN].probe}
            await change(a, now + 1, CircuitChange(DOWN, "probe_failed", final[DOWN].probe, 30_000))
    finally:
        a.close()
        b.close()


async def delivered(node: Node, ids: list[str], timeout_s: float = 5.0) -> None:
    """Wait until every message of ``ids`` is delivered, as the store says."""
    deadline = time.monotonic() + timeout_s
    while {s for s, _ in await statuses(node, ids)} != {"delivered"}:
        assert time.monotonic() < deadline, await statuses(node, ids)
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def two_nodes(tmp_path: Path, pg_dsn: str) -> AsyncIterator[tuple[Node, Node, DownPeer]]:
    """Two nodes on one PostgreSQL, each with its dispatcher and breakers, delivering to one peer."""
    peer = DownPeer()
    circuit: dict[str, object] = {"failures": 2, "open_s": 0.4, "max_open_s": 1.0, "probe_wait_s": 0.05}
    nodes = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        nodes.append(
            build(tmp_path / name, circuit, stores.make_store("postgres", tmp_path, pg_dsn), peer, 99)
        )
    tasks = [asyncio.create_task(n.dispatcher.run()) for n in nodes]
    try:
        yield nodes[0], nodes[1], peer
    finally:
        for node, task in zip(nodes, tasks, strict=True):
            await node.dispatcher.stop(1)
            task.cancel()
            node.store.close()


async def test_one_node_s_trip_holds_the_other_node_s_messages(tmp_path: Path, pg_dsn: str) -> None:
    async with two_nodes(tmp_path, pg_dsn) as (a, b, peer):
        peer.down = True
        ids = await a.send(2)  # node a's two failures trip the circuit
        await a.until(lambda: a.breakers is not None and a.breakers.state(DOWN) is State.OPEN)
        await b.until(lambda: b.breakers is not None and b.breakers.state(DOWN) is State.OPEN, 2)
        calls = peer.calls
        ids += await b.send(5, day=24)  # node b holds its messages without trying them
        await asyncio.sleep(0.2)
        assert peer.calls == calls
        assert b.sample("lienthong_circuit_state") == State.OPEN
        peer.down = False
        await delivered(a, ids)
        await a.until(lambda: {n.breakers.state(DOWN) for n in (a, b) if n.breakers} == {State.CLOSED}, 2)


async def test_an_outage_seen_by_two_nodes_is_probed_once_per_open_time(tmp_path: Path, pg_dsn: str) -> None:
    async with two_nodes(tmp_path, pg_dsn) as (a, b, peer):
        peer.down = True
        ids = [*(await a.send(4)), *(await b.send(4, day=24))]
        await a.until(lambda: a.breakers is not None and a.breakers.state(DOWN) is State.OPEN)
        await b.until(lambda: b.breakers is not None and b.breakers.state(DOWN) is State.OPEN, 2)
        started = time.monotonic()
        calls = peer.calls
        await asyncio.sleep(1.3)  # open 0.4 s, a failed probe, open 0.8 s: about two probes in all
        probes = peer.calls - calls
        assert 1 <= probes <= 2, f"{probes} attempts in {time.monotonic() - started:.1f} s of open circuit"
        peer.down = False
        await delivered(a, ids)
        assert len(peer.received) == 8


async def test_a_node_whose_wish_to_probe_was_refused_asks_again_when_the_circuit_is_due() -> None:
    """Node b asks to probe just as node a's probe failed (a's clock was ahead): refused; b holds its
    messages until the new reopening, then asks again."""
    from lienthong.store.memory import MemoryBackend  # noqa: PLC0415
    from lienthong.store.runner import InlineRunner  # noqa: PLC0415
    from test_circuits import Clock, breakers_on, message  # noqa: PLC0415

    store = Store(InlineRunner(MemoryBackend))
    store.open()
    clock = Clock()
    b = breakers_on(clock)
    start = int(clock.now * 1000)
    await change(store, start, trip(30_000))
    await change(store, start + 30_000, CircuitChange(DOWN, "want_probe", "a-probe"))

    async def cycle() -> None:
        done = await store.run(
            units.settle_and_claim, [], int(clock.now * 1000), 0, 0, circuits=b.take_changes()
        )
        b.adopt(done.circuits)

    await cycle()
    assert b.state(DOWN) is State.HALF_OPEN
    await change(store, start + 30_001, CircuitChange(DOWN, "probe_failed", "a-probe", 60_000))
    clock.now += 30.002
    b.adopt((await store.run(units.settle_and_claim, [], 0, 0, 0, circuits=[])).circuits)
    assert b.state(DOWN) is State.OPEN
    held = b.before_attempt(message("b-1"))
    assert held is not None
    assert held.next_attempt_ms == start + 90_001  # a's reopening, as the store has it
    # b's view goes stale: it believes the open time over and asks, but the store says not yet.
    b.adopt([CircuitRow(DOWN, State.OPEN, 60_000, start, None, start)])
    asked = b.before_attempt(message("b-1"))
    assert asked is not None
    assert asked.next_attempt_ms == int(clock.now * 1000)
    await cycle()  # refused: still open until a's reopening
    assert b.state(DOWN) is State.OPEN
    clock.now = (start + 90_001) / 1000
    assert b.before_attempt(message("b-1")) is not None  # asks again
    await cycle()
    assert b.state(DOWN) is State.HALF_OPEN
    assert b.before_attempt(message("b-1")) is None  # the probe
