"""Circuit breakers: a destination that is down has its messages wait in the outbox instead of burning
their retries; a probe closes the circuit again. On the memory store, with a peer that fails as told."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from lienthong.adapters.base import Receipt
from lienthong.app import build_routes, circuit_breakers, retry_policy
from lienthong.bus.circuits import CircuitBreakers, CircuitSettings, State
from lienthong.bus.dispatcher import Dispatcher
from lienthong.bus.emit import EventSink
from lienthong.bus.envelope import parse_body
from lienthong.bus.ingest import Ingestor
from lienthong.bus.middleware import Attempt, DeliveryMetrics, Middleware, Retries
from lienthong.bus.routes import Mapper
from lienthong.config import Config
from lienthong.errors import PermanentError, RetryableError
from lienthong.mappings import FunctionRegistry, SpecLoader
from lienthong.mappings.dates import VIETNAM
from lienthong.model import Message, StoredEvent
from lienthong.observability.metrics import Metrics
from lienthong.sandbox.dossiers import generate
from lienthong.store import Store, units
from lienthong.store.memory import MemoryBackend
from lienthong.store.runner import InlineRunner
from test_bus_on_memory import CODE, CODE_SPEC, CONFIG, Peer

CIRCUIT: dict[str, object] = {"failures": 2, "open_s": 0.3, "max_open_s": 1.0, "probe_wait_s": 0.05}


class DownPeer(Peer):
    """Down (a retryable failure on every call) while ``down`` is set; counts every call."""

    down: bool = False
    calls: int = 0

    async def deliver(self, message: Message, body: dict[str, Any]) -> Receipt:
        self.calls += 1
        if self.down:
            raise RetryableError("connection refused", destination="province", operation="notify")
        return await super().deliver(message, body)


@dataclass
class Node:
    store: Store
    ingestor: Ingestor
    dispatcher: Dispatcher
    metrics: Metrics
    peer: DownPeer
    breakers: CircuitBreakers | None

    async def send(self, count: int, day: int = 23) -> list[str]:
        """``count`` new dossiers received on November ``day`` (another day: other dossiers)."""
        events = [s.events[0] for s in generate(count, start=datetime(2026, 11, day, 8, tzinfo=VIETNAM))]
        parsed, _ = parse_body(orjson.dumps({"events": events}), dossier_code_field="code", max_events=99)
        return [m for r in await self.ingestor.accept(parsed, "desk") for m in r.message_ids]

    async def until(self, done: Callable[[], bool], timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.005)

    def sample(self, name: str) -> float:
        return self.metrics.registry.get_sample_value(name, {"destination": "province"}) or 0.0


def build(
    tmp_path: Path,
    circuit: dict[str, object] | None,
    store: Store | None = None,
    peer: DownPeer | None = None,
    max_attempts: int = 3,
) -> Node:
    """A node on ``store`` (a memory store of its own by default) delivering to ``peer``."""
    (tmp_path / CODE).write_text(CODE_SPEC, encoding="utf-8")
    retry = {**CONFIG["dispatcher"]["retry"], "max_attempts": max_attempts}
    dispatcher_config = {**CONFIG["dispatcher"], "retry": retry, "circuit": circuit or {"enabled": False}}
    config = Config.model_validate({**CONFIG, "dispatcher": dispatcher_config, "store": {"kind": "memory"}})
    config._base_dir = tmp_path
    if store is None:
        store = Store(InlineRunner(MemoryBackend))
    store.open()
    loader = SpecLoader(FunctionRegistry.with_plugins())
    routes = build_routes(config, loader)
    metrics = Metrics(CollectorRegistry())
    peer = peer or DownPeer()
    breakers = circuit_breakers(config, metrics, time.time)
    middleware: list[Middleware] = [
        *breakers,
        Retries(retry_policy(config.dispatcher.retry)),
        DeliveryMetrics(metrics),
    ]
    dispatcher = Dispatcher(
        store,
        Mapper(routes, store, loader),
        {"province": peer},
        middleware,
        clock=time.time,
        poll_interval_s=0.01,
    )
    ingestor = Ingestor(store, routes, metrics, on_accepted=dispatcher.wake, clock=time.time)
    EventSink("code").attach(ingestor)
    return Node(store, ingestor, dispatcher, metrics, peer, breakers[0] if breakers else None)


@contextlib.asynccontextmanager
async def started(tmp_path: Path, circuit: dict[str, object] | None) -> AsyncIterator[Node]:
    node = build(tmp_path, circuit)
    task = asyncio.create_task(node.dispatcher.run())
    try:
        yield node
    finally:
        await node.dispatcher.stop(1)
        task.cancel()
        node.store.close()


async def outage(node: Node, down_s: float) -> list[str]:
    """Ten dossiers sent while the peer is down for ``down_s``; their message ids."""
    node.peer.down = True
    ids = await node.send(10)
    await asyncio.sleep(down_s)
    node.peer.down = False
    return ids


async def statuses(node: Node, ids: list[str]) -> list[tuple[str, int]]:
    views = [await node.store.run(units.message, i) for i in ids]
    return [(v.status, v.attempts) for v in views if v is not None]


async def test_without_a_breaker_an_outage_longer_than_the_retries_makes_dead_letters(tmp_path: Path) -> None:
    async with started(tmp_path, None) as node:
        ids = await outage(node, 0.4)  # max_attempts 3, 10-20 ms apart: spent within the outage
        await node.until(lambda: node.peer.calls >= 30)
        await asyncio.sleep(0.05)
        assert {status for status, _ in await statuses(node, ids)} == {"dead"}


async def test_an_open_circuit_holds_messages_without_attempts_and_a_probe_closes_it(tmp_path: Path) -> None:
    async with started(tmp_path, CIRCUIT) as node:
        assert node.breakers is not None
        ids = await outage(node, 0.4)
        await node.until(lambda: len(node.peer.received) == 10)
        await asyncio.sleep(0.05)
        assert [s for s, _ in await statuses(node, ids)] == ["delivered"] * 10
        # Two failures opened it; the messages held meanwhile were not tried: ten deliveries, the two
        # failures and a failed probe or two (the outage outlasts the first probe), no more.
        assert sum(a for _, a in await statuses(node, ids)) <= 10 + 4
        assert node.breakers.state("province") is State.CLOSED
        assert node.sample("lienthong_circuit_opened_total") >= 1
        assert node.sample("lienthong_circuit_state") == State.CLOSED
        view = await node.store.run(units.message, ids[-1])
        assert view is not None
        assert "held" not in [h.outcome for h in view.history]  # a hold is not an attempt


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def attempt(message: Message, clock: Clock, error: Exception | None) -> Attempt:
    return Attempt(message, message.attempts + 1, clock.now, clock.now, error)  # type: ignore[arg-type]


def breakers_on(clock: Clock, metrics: Metrics | None = None) -> CircuitBreakers:
    """Breakers opening after two failures for 30 s, up to 100 s; held messages back a second later."""
    metrics = metrics or Metrics(CollectorRegistry())
    return CircuitBreakers(
        CircuitSettings(failures=2, open_s=30, max_open_s=100, probe_wait_s=1),
        clock=clock,
        state_gauge=metrics.circuit_state,
        opened=metrics.circuit_opened,
    )


async def test_a_failed_probe_opens_the_circuit_again_for_twice_as_long_up_to_the_most() -> None:
    clock, metrics = Clock(), Metrics(CollectorRegistry())
    store = Store(InlineRunner(MemoryBackend))
    store.open()
    breakers = breakers_on(clock, metrics)
    one, two = (message(f"m-{i}") for i in (1, 2))
    down = RetryableError("http 503", destination="province", operation="notify")

    def fail(m: Message) -> None:
        assert breakers.before_attempt(m) is None
        breakers.after_attempt(attempt(m, clock, down), attempt(m, clock, down).outcome())

    async def cycle() -> None:  # what the dispatcher's cycle does with the breakers' changes
        done = await store.run(
            units.settle_and_claim, [], int(clock.now * 1000), 0, 0, circuits=breakers.take_changes()
        )
        breakers.adopt(done.circuits)

    fail(one)
    assert breakers.state("province") is State.CLOSED
    fail(two)
    assert breakers.state("province") is State.OPEN
    await cycle()
    assert breakers.state("province") is State.OPEN
    held = breakers.before_attempt(one)
    assert held is not None
    assert (held.kind, held.attempt, held.next_attempt_ms) == ("held", 0, 1_030_000)
    for waited, open_s in ((30, 60), (60, 100), (100, 100)):  # doubled, then capped at max_open_s
        clock.now += waited - 0.001
        assert breakers.before_attempt(one) is not None  # still open
        clock.now += 0.001
        asking = breakers.before_attempt(one)  # held, due at once: the store is asked for it to probe
        assert asking is not None
        assert asking.next_attempt_ms == int(clock.now * 1000)
        await cycle()
        assert breakers.state("province") is State.HALF_OPEN
        assert breakers.before_attempt(one) is None  # the probe
        held = breakers.before_attempt(two)  # others wait for the probe
        assert held is not None
        assert held.next_attempt_ms == int((clock.now + 1) * 1000)
        breakers.after_attempt(attempt(one, clock, down), attempt(one, clock, down).outcome())
        assert breakers.state("province") is State.OPEN
        await cycle()
        assert breakers.before_attempt(two) is not None
        assert breakers.before_attempt(two).next_attempt_ms == int((clock.now + open_s) * 1000)  # type: ignore[union-attr]
    clock.now += 100
    assert breakers.before_attempt(two) is not None  # asks
    await cycle()
    assert breakers.before_attempt(two) is None
    breakers.after_attempt(attempt(two, clock, None), attempt(two, clock, None).outcome())
    assert breakers.state("province") is State.CLOSED
    await cycle()
    assert breakers.state("province") is State.CLOSED
    assert breakers.before_attempt(one) is None
    assert (
        metrics.registry.get_sample_value("lienthong_circuit_opened_total", {"destination": "province"}) == 4
    )


def message(message_id: str) -> Message:
    event = StoredEvent("e-1", "dossier.received", "U1", "2026-12-01T00:00:00+07:00", {"code": "D1"})
    return Message(message_id, "province", "notify", "D1", 0, 0, event, lease_until_ms=2_000_000)


async def test_a_refusal_is_not_a_failure_of_the_destination(tmp_path: Path) -> None:
    async with started(tmp_path, CIRCUIT) as node:
        node.peer.failures = [PermanentError("refused: bad code")] * 5
        ids = await node.send(6)
        await node.until(lambda: len(node.peer.received) == 1)
        await asyncio.sleep(0.05)
        assert [s for s, _ in await statuses(node, ids)].count("dead") == 5
        assert node.breakers is not None
        assert node.breakers.state("province") is State.CLOSED
