"""The bus's parts on the memory store, each built directly: the dispatcher and its middleware, the
ingestor, dead letters and payment callbacks. No files, no processes; the peer is a recording adapter
standing in for an external system (the adapters themselves are tested against sandbox peers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from lienthong.adapters.base import Receipt
from lienthong.app import build_routes, retry_policy
from lienthong.bus.deadletters import DeadLetters
from lienthong.bus.dispatcher import Dispatcher
from lienthong.bus.emit import EventSink
from lienthong.bus.envelope import parse_body
from lienthong.bus.ingest import Ingestor
from lienthong.bus.middleware import DeadLetterNotice, DeliveryMetrics, Retries
from lienthong.bus.routes import Mapper
from lienthong.clock import now_ms
from lienthong.config import Config
from lienthong.errors import IdempotencyConflict, PermanentError, RetryableError
from lienthong.mappings import FunctionRegistry, SpecLoader
from lienthong.model import Message
from lienthong.observability.metrics import Metrics
from lienthong.payments.callbacks import PaymentCallbacks
from lienthong.payments.records import PaymentRecord
from lienthong.payments.schemes import HmacFieldsScheme
from lienthong.sandbox.dossiers import generate
from lienthong.store import Store, units
from lienthong.store.memory import MemoryBackend, MemoryOutbox
from lienthong.store.runner import InlineRunner

CODE = "code.yaml"  # written beside the config by build_bus
CODE_SPEC = """description: the event's id and dossier code
fields:
  event_id: {from: event_id, required: true}
  dossier_code: {from: dossier.code, required: true}
"""
FAILURE = "bundled:provincial_failure"
CONFIG: dict[str, Any] = {
    "dispatcher": {"retry": {"initial_delay_s": 0.01, "max_delay_s": 0.02, "jitter": 0, "max_attempts": 3}},
    "destinations": {
        "province": {
            "kind": "provincial",
            "base_url": "http://127.0.0.1:9",
            "webhook_path": "/hook",
            "secret": "s",
        }
    },
    "routes": [
        {"on": "dossier.received", "deliver": [{"to": "province", "operation": "notify", "mapping": CODE}]},
        {
            "on": "dossier.status_changed",
            "deliver": [{"to": "province", "operation": "notify", "mapping": CODE}],
        },
        {"on": "delivery.failed", "deliver": [{"to": "province", "operation": "notify", "mapping": FAILURE}]},
        {"on": "payment.confirmed", "deliver": [{"to": "province", "operation": "notify"}]},
    ],
}


@dataclass
class Peer:
    """Stands in for the external system: records what it got, fails as told."""

    name: str = "province"
    received: list[tuple[str, str]] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)

    async def deliver(self, message: Message, body: dict[str, Any]) -> Receipt:
        if self.failures:
            raise self.failures.pop(0)
        self.received.append((message.event.type, message.event.event_id))
        return Receipt(200)

    async def aclose(self) -> None:
        pass


@dataclass
class Bus:
    store: Store
    ingestor: Ingestor
    dispatcher: Dispatcher
    dead_letters: DeadLetters
    events: EventSink
    metrics: Metrics
    peer: Peer

    async def send(self, *events: dict[str, Any], caller: str = "desk") -> list[Any]:
        parsed, _ = parse_body(
            orjson.dumps({"events": list(events)}), dossier_code_field="code", max_events=99
        )
        return await self.ingestor.accept(parsed, caller)

    async def until(self, done: Callable[[], bool], timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.005)


def build_routes_for(tmp_path: Path) -> Any:
    (tmp_path / CODE).write_text(CODE_SPEC, encoding="utf-8")
    config = Config.model_validate({**CONFIG, "store": {"kind": "memory"}})
    config._base_dir = tmp_path
    return build_routes(config, SpecLoader(FunctionRegistry.with_plugins()))


def build_bus(
    tmp_path: Path, backend: Callable[[], MemoryBackend] = MemoryBackend, lease_s: float = 60
) -> Bus:
    (tmp_path / CODE).write_text(CODE_SPEC, encoding="utf-8")
    config = Config.model_validate({**CONFIG, "store": {"kind": "memory"}})
    config._base_dir = tmp_path
    store = Store(InlineRunner(backend))
    store.open()
    loader = SpecLoader(FunctionRegistry.with_plugins())
    routes = build_routes(config, loader)
    metrics = Metrics(CollectorRegistry())
    events = EventSink("code")
    peer = Peer()
    mapper = Mapper(routes, store, loader)
    middleware = [
        Retries(retry_policy(config.dispatcher.retry)),
        DeadLetterNotice(events.delivery_failed),
        DeliveryMetrics(metrics),
    ]
    dispatcher = Dispatcher(
        store, mapper, {"province": peer}, middleware, clock=time.time, poll_interval_s=0.01, lease_s=lease_s
    )
    ingestor = Ingestor(store, routes, metrics, on_accepted=dispatcher.wake, clock=time.time)
    events.attach(ingestor)
    return Bus(
        store,
        ingestor,
        dispatcher,
        DeadLetters(store, routes, mapper, clock=time.time),
        events,
        metrics,
        peer,
    )


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[Bus]:
    built = build_bus(tmp_path)
    task = asyncio.create_task(built.dispatcher.run())
    yield built
    await built.dispatcher.stop(1)
    task.cancel()
    built.store.close()


def counted(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_the_dispatcher_delivers_each_dossier_in_order(bus: Bus) -> None:
    streams = generate(5)
    await bus.send(*(e for s in streams for e in s.events[:2]))
    await bus.until(lambda: len(bus.peer.received) == 10)
    for s in streams:
        ids = [i for _, i in bus.peer.received if i in (s.events[0]["event_id"], s.events[1]["event_id"])]
        assert ids == [s.events[0]["event_id"], s.events[1]["event_id"]]
    assert (
        counted(
            bus.metrics,
            "lienthong_deliveries_total",
            destination="province",
            operation="notify",
            outcome="delivered",
        )
        == 10
    )


async def test_a_retryable_failure_is_tried_again_by_the_retries_middleware(bus: Bus) -> None:
    bus.peer.failures = [RetryableError("busy"), RetryableError("busy")]
    (result,) = await bus.send(generate(1)[0].events[0])
    await bus.until(lambda: len(bus.peer.received) == 1)
    await asyncio.sleep(0.05)  # the outcome is written after the delivery
    view = await bus.store.run(units.message, result.message_ids[0])
    assert view is not None
    assert (view.status, view.attempts) == ("delivered", 3)
    assert [h.outcome for h in view.history] == ["retry", "retry", "delivered"]


async def test_giving_up_makes_a_dead_letter_whose_notice_is_stored_with_it(bus: Bus) -> None:
    bus.peer.failures = [RetryableError("busy")] * 3  # max_attempts is 3
    event = generate(1)[0].events[0]
    (result,) = await bus.send(event)
    await bus.until(lambda: any(t == "delivery.failed" for t, _ in bus.peer.received))
    view = await bus.store.run(units.message, result.message_ids[0])
    assert view is not None
    assert view.status == "dead"
    assert view.last_error is not None
    assert view.last_error.endswith("gave up after 3 attempts")
    ((_, notice_id),) = [r for r in bus.peer.received if r[0] == "delivery.failed"]
    notice = await bus.store.run(units.stored_event, notice_id)
    assert notice is not None
    assert notice.caller == "desk"  # the notice belongs to whoever sent what failed
    assert notice.dossier["failure"]["event_id"] == event["event_id"]


async def test_a_replayed_dead_letter_is_delivered_and_a_dry_run_changes_nothing(bus: Bus) -> None:
    bus.peer.failures = [PermanentError("refused")]
    (result,) = await bus.send(generate(1)[0].events[0])
    message_id = result.message_ids[0]
    await bus.until(lambda: len(bus.peer.received) == 1)  # the notice
    (plan,) = await bus.dead_letters.plan([message_id], mapping="original")
    assert plan.problem is None
    assert [m.message_id for m in await bus.dead_letters.listing()] == [message_id]
    with pytest.raises(ValueError, match="who"):
        await bus.dead_letters.replay([plan], by=" ", reason="fixed")
    assert await bus.dead_letters.replay([plan], by="ops", reason="peer fixed") == [message_id]
    await bus.until(lambda: len(bus.peer.received) == 2)
    await asyncio.sleep(0.05)
    view = await bus.store.run(units.message, message_id)
    assert view is not None
    assert view.status == "delivered"


async def test_the_ingestor_counts_accepted_duplicate_and_refused_events(bus: Bus) -> None:
    event = generate(1)[0].events[0]
    first = await bus.send(event)
    again = await bus.send(event)
    assert again[0].duplicate
    assert again[0].message_ids == first[0].message_ids
    with pytest.raises(IdempotencyConflict):
        await bus.send({**event, "unit_code": "other"})
    with pytest.raises(IdempotencyConflict):
        await bus.send(event, caller="someone-else")

    def count(outcome: str) -> float:
        return counted(
            bus.metrics, "lienthong_events_received_total", type="dossier.received", outcome=outcome
        )

    assert (count("accepted"), count("duplicate"), count("rejected")) == (1, 1, 2)


class FullDisk(MemoryOutbox):
    """Outcome writes fail while ``full`` is set, as on a full disk."""

    full = False

    def finish(self, outcomes: Any) -> None:
        if FullDisk.full:
            raise OSError("database or disk is full")
        super().finish(outcomes)


class FullDiskBackend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.outbox = FullDisk(self)


async def test_outcomes_that_cannot_be_written_are_written_when_the_store_comes_back(tmp_path: Path) -> None:
    FullDisk.full = False
    built = build_bus(tmp_path, FullDiskBackend, lease_s=60)
    task = asyncio.create_task(built.dispatcher.run())
    try:
        a, b = generate(2)
        FullDisk.full = True
        await built.send(a.events[0], a.events[1], b.events[0])
        await built.until(lambda: len(built.peer.received) == 2)  # the first of each dossier
        await asyncio.sleep(0.1)  # cycles fail meanwhile: the dossiers' next messages wait
        assert len(built.peer.received) == 2
        FullDisk.full = False  # the disk has room again: no restart, no lease to wait for
        await built.until(lambda: len(built.peer.received) == 3, timeout_s=2)
        order = [i for _, i in built.peer.received]
        assert order.index(a.events[0]["event_id"]) < order.index(a.events[1]["event_id"])
        assert sorted(order) == sorted(
            [a.events[0]["event_id"], a.events[1]["event_id"], b.events[0]["event_id"]]
        )
    finally:
        FullDisk.full = False
        await built.dispatcher.stop(1)
        task.cancel()
        built.store.close()


async def test_a_message_whose_outcome_was_lost_is_delivered_again_after_its_lease(tmp_path: Path) -> None:
    built = build_bus(tmp_path, lease_s=0.3)
    slow = asyncio.Event()

    async def hangs(message: Message, body: dict[str, Any]) -> Receipt:
        slow.set()
        await asyncio.Event().wait()  # never answers: the delivery is cut off below
        raise AssertionError

    first_peer_deliver = built.peer.deliver
    built.peer.deliver = hangs  # type: ignore[method-assign]
    task = asyncio.create_task(built.dispatcher.run())
    a = generate(1)[0]
    await built.send(a.events[0])
    await slow.wait()
    await built.dispatcher.stop(0)  # the delivery is cancelled: its outcome is never written
    task.cancel()
    built.peer.deliver = first_peer_deliver  # type: ignore[method-assign]
    again = Dispatcher(
        built.store,
        Mapper(build_routes_for(tmp_path), built.store, SpecLoader(FunctionRegistry.with_plugins())),
        {"province": built.peer},
        [],
        clock=time.time,
        poll_interval_s=0.01,
    )  # a second dispatcher on the same store, as another node would be
    task = asyncio.create_task(again.run())
    try:
        await built.until(lambda: len(built.peer.received) == 1, timeout_s=3)  # after the lease, not at once
        assert built.peer.received == [("dossier.received", a.events[0]["event_id"])]
    finally:
        await again.stop(1)
        task.cancel()
        built.store.close()


async def test_a_verified_payment_callback_raises_one_confirmation_however_often_it_comes(bus: Bus) -> None:
    scheme = HmacFieldsScheme("vcb", "bank-secret", ("transaction_id", "reference", "amount"))
    callbacks = PaymentCallbacks({"vcb": scheme}, bus.store, bus.events, bus.metrics, clock=time.time)
    dossier = orjson.dumps({"code": "HS-9"}).decode()
    payment = PaymentRecord(
        "TT-9",
        "HS-9",
        "U1",
        30_000,
        dossier,
        "https://pay",
        "initiated",
        "",
        now_ms(time.time),
        caller="desk",
    )
    await bus.store.run(units.save_payment, payment)
    body = {
        "transaction_id": "V-1",
        "reference": "TT-9",
        "amount": 30_000,
        "paid_at": "2026-12-01T10:00:00+07:00",
    }
    headers = {"x-signature": scheme.sign(body)}
    verdicts = [(await callbacks.receive("vcb", orjson.dumps(body), headers)).verdict for _ in range(3)]
    assert verdicts == ["accepted", "repeat", "repeat"]
    await bus.until(lambda: len(bus.peer.received) == 1)
    await asyncio.sleep(0.05)
    assert [t for t, _ in bus.peer.received] == ["payment.confirmed"]
    stored = await bus.store.run(units.payment, "TT-9")
    assert stored is not None
    assert (stored.status, stored.transaction_id) == ("paid", "V-1")


async def test_a_buffered_message_that_waited_past_its_lease_is_not_sent_from_the_stale_copy(
    tmp_path: Path,
) -> None:
    built = build_bus(tmp_path, lease_s=0.25)
    built.dispatcher._max_in_flight = 1  # one at a time: the others wait in the buffer
    plain = built.peer.deliver

    async def slow(message: Message, body: dict[str, Any]) -> Receipt:
        await asyncio.sleep(0.15)
        return await plain(message, body)

    built.peer.deliver = slow  # type: ignore[method-assign]
    streams = generate(4)
    await built.send(*(s.events[0] for s in streams))
    task = asyncio.create_task(built.dispatcher.run())
    try:
        await built.until(lambda: len(built.peer.received) >= 4, timeout_s=10)
        await asyncio.sleep(0.5)
        ids = [i for _, i in built.peer.received]
        assert sorted(ids) == sorted(s.events[0]["event_id"] for s in streams)  # each once
    finally:
        await built.dispatcher.stop(1)
        task.cancel()
        built.store.close()


async def test_an_attempt_is_cut_off_before_its_lease_runs_out_so_no_copy_arrives_late(
    tmp_path: Path,
) -> None:
    built = build_bus(tmp_path, lease_s=0.6)
    plain = built.peer.deliver
    calls = [0]

    async def slow_first(message: Message, body: dict[str, Any]) -> Receipt:
        calls[0] += 1
        if calls[0] == 1:
            await asyncio.sleep(1.0)  # longer than the lease
        return await plain(message, body)

    built.peer.deliver = slow_first  # type: ignore[method-assign]
    a = generate(1)[0]
    await built.send(a.events[0], a.events[1])
    task = asyncio.create_task(built.dispatcher.run())
    try:
        await built.until(lambda: len(built.peer.received) >= 2, timeout_s=10)
        await asyncio.sleep(1.0)  # a late copy of the first would land by now
        assert [i for _, i in built.peer.received] == [a.events[0]["event_id"], a.events[1]["event_id"]]
    finally:
        await built.dispatcher.stop(1)
        task.cancel()
        built.store.close()
