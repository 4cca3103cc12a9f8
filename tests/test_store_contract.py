"""The store's contract, held against every backend: memory, SQLite on a thread and in its own process,
and PostgreSQL. Each test drives units of work through ``Store.run``, as lienthong does."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import orjson
import pytest

from lienthong.bus.envelope import ParsedEvent, parse_body
from lienthong.bus.ingest import MessageIds, ingest_item
from lienthong.citizens.records import LookupRecord
from lienthong.errors import IdempotencyConflict, StoreError
from lienthong.model import IngestItem, IngestResult, MappingVersion, Outcome, PlannedMessage, Replay
from lienthong.payments.records import CallbackRecord, Claim, PaymentRecord, Settlement
from lienthong.sandbox.dossiers import generate
from lienthong.scheduler.runs import RunRecord
from lienthong.store import Store, Tx, units
from lienthong.store.contract import OperatorAction

NOW = 1_700_000_000_000
LEASE = 60_000
new_id = MessageIds()


def parsed(event: dict[str, Any]) -> ParsedEvent:
    events, _ = parse_body(orjson.dumps(event), dossier_code_field="code", max_events=10)
    return events[0]


def item(event: dict[str, Any], *destinations: str, caller: str = "") -> IngestItem:
    deliveries = tuple(PlannedMessage(new_id(), d, "op") for d in destinations)
    return ingest_item(parsed(event), deliveries, caller)


async def one_request(store: Store, items: list[IngestItem], now: int = NOW) -> list[IngestResult]:
    (answer,) = await store.run(units.ingest, [items], now)
    if isinstance(answer, IdempotencyConflict):
        raise answer
    return answer


async def claim(store: Store, now: int = NOW, limit: int = 10, lease: int = LEASE) -> list[Any]:
    return await store.run(units.claim, now, limit, lease)


def done(message: str, attempt: int = 1, kind: str = "delivered", next_ms: int | None = None) -> Outcome:
    error = None if kind == "delivered" else "boom"
    return Outcome(message, kind, attempt, NOW, NOW + 5, next_ms, error)  # type: ignore[arg-type]


async def test_ingest_is_idempotent_on_event_id(store: Store) -> None:
    event = generate(1)[0].events[0]
    first = await one_request(store, [item(event, "portal", "emc")])
    again = await one_request(store, [item(event, "portal", "emc")])
    assert not first[0].duplicate
    assert again[0].duplicate
    assert again[0].message_ids == first[0].message_ids
    assert len(await claim(store)) == 2


async def test_a_reused_event_id_with_other_content_or_from_another_caller_conflicts(store: Store) -> None:
    event = generate(1)[0].events[0]
    await one_request(store, [item(event, "portal", caller="a")])
    with pytest.raises(IdempotencyConflict):
        await one_request(store, [item({**event, "unit_code": "other"}, "portal", caller="a")])
    with pytest.raises(IdempotencyConflict):
        await one_request(store, [item(event, "portal", caller="b")])


async def test_claims_give_one_message_per_key_oldest_first(store: Store) -> None:
    a, b = generate(2)
    await one_request(
        store, [item(a.events[0], "portal"), item(a.events[1], "portal"), item(b.events[0], "portal")]
    )
    claimed = await claim(store)
    assert [c.event.event_id for c in claimed] == [a.events[0]["event_id"], b.events[0]["event_id"]]
    assert await claim(store) == []  # a's second message waits behind its first, in flight
    await store.run(units.complete, [done(claimed[0].message_id)])
    (next_row,) = await claim(store)
    assert next_row.event.event_id == a.events[1]["event_id"]
    assert next_row.event.dossier["status"] == "processing"
    assert next_row.lease_until_ms == NOW + LEASE


async def test_a_message_waiting_for_retry_holds_back_its_dossier_until_due(store: Store) -> None:
    (a,) = generate(1)
    await one_request(store, [item(a.events[0], "portal"), item(a.events[1], "portal")])
    (first,) = await claim(store)
    await store.run(units.complete, [done(first.message_id, kind="retry", next_ms=NOW + 1000)])
    assert await claim(store, NOW + 999) == []
    (again,) = await claim(store, NOW + 1000)
    assert again.message_id == first.message_id
    assert again.attempts == 1


async def test_a_lapsed_lease_makes_the_message_due_again_and_drops_the_late_outcome(store: Store) -> None:
    (a,) = generate(1)
    await one_request(store, [item(a.events[0], "portal"), item(a.events[1], "portal")])
    (first,) = await claim(store, lease=1000)
    assert await claim(store, NOW + 999) == []  # still leased: its dossier waits
    (again,) = await claim(store, NOW + 1000)  # the outcome never came: due again, in order
    assert again.message_id == first.message_id
    assert again.lease_until_ms == NOW + 1000 + LEASE
    late = replace(done(first.message_id, kind="dead"), lease_until_ms=first.lease_until_ms)
    await store.run(units.complete, [late])  # the first claim's outcome: its lease was taken over
    view = await store.run(units.message, first.message_id)
    assert view is not None
    assert view.status == "inflight"
    await store.run(units.complete, [replace(done(first.message_id), lease_until_ms=again.lease_until_ms)])
    (second,) = await claim(store, NOW + 1000)
    assert second.event.event_id == a.events[1]["event_id"]


async def test_a_held_message_waits_without_an_attempt_and_keeps_its_dossier_in_order(store: Store) -> None:
    (a,) = generate(1)
    await one_request(store, [item(a.events[0], "portal"), item(a.events[1], "portal")])
    (first,) = await claim(store)
    await store.run(units.complete, [done(first.message_id, kind="retry", next_ms=NOW)])
    (again,) = await claim(store)
    held = Outcome(
        again.message_id, "held", again.attempts, NOW, NOW, NOW + 5000, lease_until_ms=again.lease_until_ms
    )
    await store.run(units.complete, [held])
    view = await store.run(units.message, first.message_id)
    assert view is not None
    assert (view.status, view.attempts, len(view.history)) == ("pending", 1, 1)  # no attempt counted
    assert await claim(store, NOW + 4999) == []  # held, and its dossier's next message behind it
    (back,) = await claim(store, NOW + 5000)
    assert (back.message_id, back.attempts) == (first.message_id, 1)
    stale = replace(held, lease_until_ms=again.lease_until_ms)  # a hold under a lease taken over
    await store.run(units.complete, [stale])
    view = await store.run(units.message, first.message_id)
    assert view is not None
    assert view.status == "inflight"


async def test_a_dead_letter_releases_its_dossier(store: Store) -> None:
    (a,) = generate(1)
    await one_request(store, [item(a.events[0], "portal"), item(a.events[1], "portal")])
    (first,) = await claim(store)
    await store.run(units.complete, [done(first.message_id, kind="dead")])
    (second,) = await claim(store)
    assert second.event.event_id == a.events[1]["event_id"]
    (stats,) = await store.run(units.stats)
    assert (stats.dead, stats.inflight, stats.pending) == (1, 1, 0)
    (letter,) = await store.run(units.dead_letters, None, 10)
    assert letter.message_id == first.message_id
    assert await store.run(units.dead_letters, "emc", 10) == []


def failed_notice(message_id: str, code: str) -> dict[str, Any]:
    return {
        "event_id": f"lienthong:failed:{message_id}:1",
        "type": "delivery.failed",
        "occurred_at": "2026-01-01T00:00:00+07:00",
        "unit_code": "U1",
        "dossier": {"code": code, "failure": {"message_id": message_id}},
    }


class Crash(Exception):
    pass


def complete_then_crash(tx: Tx, outcomes: list[Outcome]) -> None:
    """The outcome's unit, and then a failure before the commit."""
    units.complete(tx, outcomes)
    raise Crash("injected between the outcome and the commit")


async def test_an_outcome_and_the_notice_it_raises_commit_together_or_not_at_all(store: Store) -> None:
    (a,) = generate(1)
    await one_request(store, [item(a.events[0], "portal")])
    (first,) = await claim(store)
    notice = failed_notice(first.message_id, a.code)
    dead = replace(done(first.message_id, kind="dead"), raises=(item(notice, "province"),))

    with pytest.raises(StoreError, match="injected"):
        await store.run(complete_then_crash, [dead])
    assert await store.run(units.stored_event, notice["event_id"]) is None  # neither one
    view = await store.run(units.message, first.message_id)
    assert view is not None
    assert view.status == "inflight"

    await store.run(units.complete, [dead])
    view = await store.run(units.message, first.message_id)
    assert view is not None
    assert view.status == "dead"
    (told,) = await claim(store, NOW + 10)
    assert (told.destination, told.event.event_id) == ("province", notice["event_id"])
    await store.run(units.complete, [dead])  # the same outcome again raises nothing new
    waiting = {
        d.destination: d.pending + d.inflight for d in await store.run(units.stats) if d.pending + d.inflight
    }
    assert waiting == {"province": 1}


async def test_destinations_are_ordered_independently(store: Store) -> None:
    (a,) = generate(1)
    await one_request(store, [item(a.events[0], "portal", "emc")])
    assert sorted(c.destination for c in await claim(store)) == ["emc", "portal"]


async def test_recover_returns_every_message_in_flight_to_pending(store: Store) -> None:
    events = [s.events[0] for s in generate(3)]
    await one_request(store, [item(e, "portal") for e in events])
    assert len(await claim(store, limit=2)) == 2
    assert await store.run(units.recover) == 2
    assert len(await claim(store)) == 3


async def test_a_message_view_lists_every_attempt(store: Store) -> None:
    (a,) = generate(1)
    await one_request(store, [item(a.events[0], "portal", caller="desk")])
    (row,) = await claim(store, limit=1)
    await store.run(units.complete, [done(row.message_id, 1, "retry", NOW)])
    await claim(store, limit=1)
    await store.run(units.complete, [done(row.message_id, 2)])
    view = await store.run(units.message, row.message_id)
    assert view is not None
    assert (view.status, view.attempts, view.caller) == ("delivered", 2, "desk")
    assert [(h.attempt, h.outcome, h.duration_ms) for h in view.history] == [
        (1, "retry", 5),
        (2, "delivered", 5),
    ]
    assert await store.run(units.message, "m-none") is None


async def test_the_ledger_keeps_the_latest_state_when_events_arrive_out_of_order(store: Store) -> None:
    (a,) = generate(1)
    received, processing, issued, returned = a.events
    await one_request(store, [item(returned)])
    await one_request(store, [item(received), item(processing), item(issued)])
    entry = await store.run(units.ledger_entry, a.code)
    assert entry is not None
    assert entry.status == "returned"
    assert entry.last_event_id == returned["event_id"]
    assert entry.returned_at == returned["dossier"]["returned_at"]
    assert entry.procedure_code == received["dossier"]["procedure"]["code"]  # kept from an older event
    assert entry.result_sha256 == (returned["dossier"]["results"][0]["sha256"],)


async def test_merged_requests_are_each_all_or_nothing(store: Store) -> None:
    a, b, c = generate(3)
    await one_request(store, [item(a.events[0], "portal")])
    conflicting = {**a.events[0], "unit_code": "other"}
    requests = [
        [item(b.events[0], "portal")],
        [item(c.events[0], "portal"), item(conflicting, "portal")],  # refused whole: c is not stored
        [item(b.events[0], "portal"), item(b.events[1], "portal")],  # b's first event again: a duplicate
    ]
    first, refused, third = await store.run(units.ingest, requests, NOW)
    assert isinstance(refused, IdempotencyConflict)
    assert not isinstance(first, IdempotencyConflict)
    assert not isinstance(third, IdempotencyConflict)
    assert [r.duplicate for r in first] == [False]
    assert [r.duplicate for r in third] == [True, False]
    assert third[0].message_ids == first[0].message_ids
    assert await store.run(units.ledger_entry, c.code) is None
    entry = await store.run(units.ledger_entry, b.code)
    assert entry is not None
    assert entry.last_event_id == b.events[1]["event_id"]


async def test_a_replay_makes_a_dead_letter_due_with_a_fresh_budget_and_a_new_mapping(store: Store) -> None:
    (a,) = generate(1)
    await one_request(store, [item(a.events[0], "portal")])
    (first,) = await claim(store)
    await store.run(units.complete, [done(first.message_id, 3, kind="dead")])
    replayed = await store.run(
        units.replay, [Replay(first.message_id, "h2"), Replay("m-not-dead")], "ops", "fixed", NOW + 50
    )
    assert replayed == [first.message_id]
    (again,) = await claim(store, NOW + 50)
    assert (again.replay_base, again.created_ms, again.mapping_hash) == (3, NOW + 50, "h2")


async def test_a_replayed_dead_letter_waits_behind_a_later_message_of_its_key_in_flight(store: Store) -> None:
    (a,) = generate(1)
    await one_request(store, [item(a.events[0], "portal"), item(a.events[1], "portal")])
    (first,) = await claim(store)
    await store.run(units.complete, [done(first.message_id, kind="dead")])
    (second,) = await claim(store)  # the dead letter released its key
    await store.run(units.replay, [Replay(first.message_id)], "ops", "fixed", NOW)
    assert await claim(store) == []  # never two in flight for one key
    await store.run(units.complete, [done(second.message_id)])
    (again,) = await claim(store)
    assert again.message_id == first.message_id


async def test_an_outcome_sent_again_after_a_replay_does_not_undo_it(store: Store) -> None:
    (a,) = generate(1)
    await one_request(store, [item(a.events[0], "portal")])
    (first,) = await claim(store)
    dead = replace(done(first.message_id, kind="dead"), lease_until_ms=first.lease_until_ms)
    await store.run(units.complete, [dead])
    await store.run(units.replay, [Replay(first.message_id)], "ops", "fixed", NOW)
    await store.run(units.complete, [dead])  # the dispatcher sends a kept outcome again
    view = await store.run(units.message, first.message_id)
    assert view is not None
    assert view.status == "pending"


async def test_dropping_a_cycle_s_lease_frees_only_what_that_cycle_claimed(store: Store) -> None:
    a, b = generate(2)
    await one_request(store, [item(a.events[0], "portal")])
    (lost,), _ = await store.run(units.settle_and_claim, [], NOW, 10, NOW + 111)  # its answer never came
    await one_request(store, [item(b.events[0], "portal")])
    (kept,), _ = await store.run(units.settle_and_claim, [], NOW, 10, NOW + 222)
    freed, _ = await store.run(units.settle_and_claim, [], NOW, 10, NOW + 333, orphaned=[NOW + 111])
    assert [m.message_id for m in freed] == [lost.message_id]  # claimed again, under the new lease
    assert freed[0].lease_until_ms == NOW + 333
    view = await store.run(units.message, kept.message_id)
    assert view is not None
    assert view.status == "inflight"  # the other cycle's claim is untouched


async def test_mapping_versions_keep_the_first_document_for_a_hash(store: Store) -> None:
    await store.run(units.save_mappings, [MappingVersion("h1", "portal", {"v": 1})], NOW)
    await store.run(units.save_mappings, [MappingVersion("h1", "portal", {"v": 2})], NOW)
    assert await store.run(units.mapping_version, "h1") == MappingVersion("h1", "portal", {"v": 1})
    assert await store.run(units.mapping_version, "h9") is None


async def test_look_ups_are_audited_newest_first(store: Store) -> None:
    records = [
        LookupRecord(f"lk-{n}", NOW + n, "desk", "o1", "why", "ref", "form", "found") for n in range(3)
    ]
    for record in records:
        await store.run(units.record_lookup, record)
    assert await store.run(units.lookups, 2) == [records[2], records[1]]


def payment(reference: str = "REF-1", amount: int = 50_000) -> PaymentRecord:
    dossier = orjson.dumps({"code": "HS-1"}).decode()
    return PaymentRecord(reference, "HS-1", "U1", amount, dossier, "https://pay", "initiated", "", NOW)


def settlement(claim_: Claim, confirmed: IngestItem | None) -> Settlement:
    record = CallbackRecord(NOW, claim_.channel, claim_.reference, claim_.transaction_id, "", claim_.status)
    return Settlement(claim_, record, confirmed)


def paid_event(transaction: str) -> dict[str, Any]:
    return {
        "event_id": f"lienthong:paid:vcb:{transaction}",
        "type": "payment.confirmed",
        "occurred_at": "2026-01-01T00:00:00+07:00",
        "unit_code": "U1",
        "dossier": {"code": "HS-1", "payment": {"transaction_id": transaction}},
    }


async def test_a_payment_is_paid_once_and_a_second_payment_is_a_finding(store: Store) -> None:
    await store.run(units.save_payment, payment())
    await store.run(units.save_payment, replace(payment(), pay_url="https://pay/2"))  # refreshed
    stored = await store.run(units.payment, "REF-1")
    assert stored is not None
    assert stored.pay_url == "https://pay/2"
    paid = Claim("vcb", "T1", "REF-1", 50_000, "paid", "2026-01-01T00:00:00+07:00")
    verdict = await store.run(units.settle_payment, settlement(paid, item(paid_event("T1"), "province")), NOW)
    assert verdict == "accepted"
    again = await store.run(units.settle_payment, settlement(paid, item(paid_event("T1"), "province")), NOW)
    assert again == "repeat"
    other = paid._replace(transaction_id="T2")
    twice = await store.run(units.settle_payment, settlement(other, item(paid_event("T2"), "province")), NOW)
    assert twice == "duplicate_payment"
    stored = await store.run(units.payment, "REF-1")
    assert stored is not None
    assert (stored.status, stored.transaction_id) == ("paid", "T1")
    await store.run(units.save_payment, replace(payment(), pay_url="https://pay/3"))  # paid: unchanged
    stored = await store.run(units.payment, "REF-1")
    assert stored is not None
    assert stored.pay_url == "https://pay/2"
    (finding,) = await store.run(units.payment_findings, 10)
    assert (finding.kind, finding.transaction_id) == ("duplicate_payment", "T2")
    verdicts = [c.verdict for c in await store.run(units.callbacks, 10, "REF-1")]
    assert verdicts == ["duplicate_payment", "repeat", "accepted"]
    (receipt_route,) = await claim(store)  # one payment.confirmed, however many callbacks
    assert receipt_route.event.type == "payment.confirmed"
    await store.run(units.record_callback, replace(settlement(paid, None).record, reference="REF-2"))
    assert len(await store.run(units.callbacks, 10, None)) == 4


async def test_callers_racing_on_one_store_each_get_their_answer(store: Store) -> None:
    streams = generate(30)
    answers = await asyncio.gather(*(one_request(store, [item(s.events[0], "portal")]) for s in streams))
    assert all(not a[0].duplicate for a in answers)
    assert len(await claim(store, limit=100)) == 30


async def test_each_unit_alone_is_one_commit_counted_by_the_store(store: Store) -> None:
    before = store.commits
    await store.run(units.stats)
    await one_request(store, [item(generate(1)[0].events[0], "portal")])
    assert store.commits == before + 2


def run_record(run_id: str = "bank:2026-12-01T02:00+07:00", attempt: int = 1, **fields: Any) -> RunRecord:
    values: dict[str, Any] = {
        "job": run_id.split(":", 1)[0],
        "window_start_ms": NOW - 86_400_000,
        "window_end_ms": NOW,
        "started_ms": NOW + attempt,
        "node": "n1",
    }
    values.update(fields)
    return RunRecord(run_id=run_id, attempt=attempt, **values)


async def test_a_run_id_is_claimed_once_and_its_attempts_are_kept_in_order(store: Store) -> None:
    first = run_record()
    assert await store.run(units.claim_run, first)
    assert not await store.run(units.claim_run, replace(first, node="n2"))  # a second node, a restart
    done = first.ended("failed", NOW + 10, detail="boom")
    await store.run(units.finish_run, done)
    forced = replace(first.next_attempt(NOW + 20), forced_by="ops", forced_reason="bank resent the file")
    assert await store.run(units.claim_run, forced)
    finished = forced.ended("succeeded", NOW + 30, counts={"matched": 7, "unknown": 1}, reports=("r.json",))
    await store.run(units.finish_run, finished)
    assert await store.run(units.run_attempts, first.run_id) == [done, finished]
    assert await store.run(units.run_attempts, "bank:none") == []


async def test_recent_runs_come_newest_first_and_by_job(store: Store) -> None:
    a = run_record("bank:1", window_end_ms=NOW, started_ms=NOW + 1)
    b = run_record("kpi:1", window_end_ms=NOW, started_ms=NOW + 2)
    c = run_record("bank:2", window_end_ms=NOW + 1000, started_ms=NOW + 3)
    assert await store.run(units.skip_runs, [a, b, c, a]) == 3
    assert [r.run_id for r in await store.run(units.recent_runs, 10, None)] == ["bank:2", "kpi:1", "bank:1"]
    assert [r.run_id for r in await store.run(units.recent_runs, 1, "bank")] == ["bank:2"]


async def test_the_latest_window_and_the_last_success_of_a_job(store: Store) -> None:
    assert await store.run(units.latest_run, "bank") is None
    old = run_record("bank:old", window_end_ms=NOW - 1000)
    new = run_record("bank:new", window_end_ms=NOW, started_ms=NOW - 5000)  # started earlier, later window
    for record in (old, new):
        await store.run(units.claim_run, record)
    await store.run(units.finish_run, old.ended("succeeded", NOW + 1))
    await store.run(units.finish_run, new.ended("failed", NOW + 2))
    latest = await store.run(units.latest_run, "bank")
    assert latest is not None
    assert latest.run_id == "bank:new"
    success = await store.run(units.last_success, "bank")
    assert success is not None
    assert (success.run_id, success.ended_ms) == ("bank:old", NOW + 1)
    assert await store.run(units.last_success, "kpi") is None


async def test_attempts_left_running_by_a_dead_node_are_abandoned_as_failed(store: Store) -> None:
    stale = run_record("bank:1", started_ms=NOW - 10_000)
    live = run_record("bank:2", started_ms=NOW)
    other = run_record("kpi:1", started_ms=NOW - 10_000)
    for record in (stale, live, other):
        await store.run(units.claim_run, record)
    assert await store.run(units.abandon_runs, "bank", NOW - 1, NOW + 5, "abandoned") == 1
    (gone,) = await store.run(units.run_attempts, "bank:1")
    assert (gone.outcome, gone.ended_ms, gone.detail) == ("failed", NOW + 5, "abandoned")
    (still,) = await store.run(units.run_attempts, "bank:2")
    assert still.outcome == "running"
    (untouched,) = await store.run(units.run_attempts, "kpi:1")
    assert untouched.outcome == "running"


# -- operators' actions on dead letters (issue 14 §4) ----------------------------------------------------
def died_at(message: str, finished_ms: int) -> Outcome:
    return Outcome(
        message, "dead", 1, finished_ms - 5, finished_ms, None, "the service answered http 422", 422
    )


async def dead_letters_at(store: Store, *times: int) -> list[str]:
    """One dead letter of a dossier of its own per moment in ``times``, each dying then; their ids."""
    dossiers = generate(len(times))
    await one_request(store, [item(d.events[0], "portal") for d in dossiers])
    claimed = await claim(store, limit=len(times))
    by_event = {c.event.event_id: c.message_id for c in claimed}
    ids = [by_event[d.events[0]["event_id"]] for d in dossiers]
    await store.run(units.complete, [died_at(i, t) for i, t in zip(ids, times, strict=True)])
    return ids


async def test_dead_letters_between_two_moments_and_of_one_destination(store: Store) -> None:
    early, middle, late = await dead_letters_at(store, NOW + 10, NOW + 20, NOW + 30)
    found = await store.run(units.dead_letters_between, None, NOW + 20, NOW + 30, 10)
    assert [m.message_id for m in found] == [middle]  # since is inclusive, until exclusive
    found = await store.run(units.dead_letters_between, None, None, NOW + 20, 10)
    assert [m.message_id for m in found] == [early]
    found = await store.run(units.dead_letters_between, None, NOW + 15, None, 10)
    assert [m.message_id for m in found] == [middle, late]
    assert await store.run(units.dead_letters_between, "emc", None, None, 10) == []
    assert len(await store.run(units.dead_letters_between, "portal", None, None, 2)) == 2


async def test_a_discarded_dead_letter_leaves_the_dead_letters_for_good_recorded_with_who_and_why(
    store: Store,
) -> None:
    kept, thrown = await dead_letters_at(store, NOW + 10, NOW + 20)
    done_ = await store.run(units.discard, [thrown, thrown, "m-unknown"], "ops", "sent by hand", NOW + 100)
    assert done_ == [thrown]
    assert [m.message_id for m in await store.run(units.dead_letters, None, 10)] == [kept]
    (stats,) = await store.run(units.stats)
    assert stats.dead == 1
    view = await store.run(units.message, thrown)
    assert view is not None
    assert (view.status, view.updated_ms) == ("discarded", NOW + 100)
    # Discarded is for good: neither replayed nor discarded again, nor ever claimed.
    assert await store.run(units.replay, [Replay(thrown)], "ops", "again", NOW + 200) == []
    assert await store.run(units.discard, [thrown], "ops", "again", NOW + 200) == []
    assert await claim(store, NOW + 300) == []
    (action,) = await store.run(units.operator_actions, 10, thrown)
    assert action == OperatorAction(NOW + 100, "ops", "discard", thrown, "sent by hand", "")


async def test_operator_actions_come_newest_first_and_by_message(store: Store) -> None:
    a, b = await dead_letters_at(store, NOW + 10, NOW + 20)
    await store.run(units.record_action, OperatorAction(NOW + 30, "lan", "reveal", a, "citizen called", "x"))
    assert await store.run(units.replay_by_operator, [Replay(b), Replay(a)], "minh", "fixed", NOW + 40) == [
        b,
        a,
    ]
    actions = await store.run(units.operator_actions, 10, None)
    assert (actions[0].actor, actions[0].action) == ("minh", "replay")
    assert {(x.action, x.message_id) for x in actions[:2]} == {("replay", a), ("replay", b)}
    assert actions[2] == OperatorAction(NOW + 30, "lan", "reveal", a, "citizen called", "x")
    assert [x.action for x in await store.run(units.operator_actions, 10, a)] == ["replay", "reveal"]
    assert len(await store.run(units.operator_actions, 1, None)) == 1
