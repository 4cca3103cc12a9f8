"""The message log in the store (issue 13 §3): every delivery attempt, payment callback, prefill look-up and
operator action appends a record in the same transaction as what it records, at dense indexes in commit
order; records hold hashes, never content. On every backend."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

import stores
from lienthong.citizens.records import LookupRecord
from lienthong.errors import StoreError
from lienthong.model import Outcome
from lienthong.msglog.merkle import leaf_hash
from lienthong.msglog.records import LogRecord
from lienthong.payments.records import CallbackRecord
from lienthong.sandbox.dossiers import generate
from lienthong.scheduler.runs import RunRecord
from lienthong.store import Store, Tx, units
from lienthong.store.contract import OperatorAction
from test_store_contract import NOW, Crash, claim, item, one_request


async def records(store: Store) -> list[LogRecord]:
    found = await store.run(units.log_records, 0, 1000)
    assert [i for i, _, _ in found] == list(range(len(found)))  # dense, from 0
    assert all(leaf == leaf_hash(data).hex() for _, data, leaf in found)
    return [LogRecord.parse(data) for _, data, _ in found]


def attempt(message_id: str, kind: str = "delivered", number: int = 1) -> Outcome:
    return Outcome(
        message_id,
        kind,  # type: ignore[arg-type]
        number,
        NOW,
        NOW + 7,
        None,
        None if kind == "delivered" else "http 503",
        200 if kind == "delivered" else 503,
        actor="portal.push",
        request_sha256="aa" * 32,
        response_sha256="bb" * 32,
    )


def outcome_then_crash(tx: Tx, outcomes: list[Outcome]) -> None:
    units.complete(tx, outcomes)
    raise Crash("injected after the outcome's records")


async def test_each_attempt_is_a_record_written_with_its_outcome_or_not_at_all(store: Store) -> None:
    a, b = generate(2)
    await one_request(store, [item(a.events[0], "portal"), item(b.events[0], "portal")])
    first, second = await claim(store)
    with pytest.raises(StoreError, match="injected"):
        await store.run(outcome_then_crash, [attempt(first.message_id)])
    assert await records(store) == []
    held = replace(attempt(second.message_id), kind="held")  # a hold is not an attempt
    await store.run(units.complete, [attempt(first.message_id, "retry"), held])
    await store.run(units.complete, [attempt(first.message_id, "delivered", 2)])
    assert await records(store) == [
        LogRecord(NOW + 7, "delivery", first.message_id, "portal.push", "retry", "aa" * 32, "bb" * 32,
                  "attempt 1, http 503"),
        LogRecord(NOW + 7, "delivery", first.message_id, "portal.push", "delivered", "aa" * 32, "bb" * 32,
                  "attempt 2, http 200"),
    ]  # fmt: skip
    about = await store.run(units.log_about, first.message_id, 10)
    assert [i for i, _ in about] == [0, 1]
    assert await store.run(units.log_size) == 2


async def test_callbacks_look_ups_operator_actions_and_forced_runs_are_recorded(store: Store) -> None:
    callback = CallbackRecord(
        NOW, "paygov", "REF-9", "T-1", "unknown_reference", "paid", "10.0.0.9", "cc" * 32
    )
    await store.run(units.record_callback, callback)
    lookup = LookupRecord("req-1", NOW + 1, "desk", "officer-7", "prefill", "hmac-of-id", "form-1", "found")
    await store.run(units.record_lookup, lookup)
    await store.run(units.record_action, OperatorAction(NOW + 2, "lan", "reveal", "m-1", "a citizen asked"))
    run = RunRecord("kpis", "kpis:w", 1, 0, 1, NOW + 3, "running", forced_by="lan", forced_reason="audit")
    assert await store.run(units.claim_run, run)
    assert not await store.run(units.claim_run, run)  # not claimed twice: recorded once
    reason, audit = (hashlib.sha256(t.encode()).hexdigest() for t in ("a citizen asked", "audit"))
    assert await records(store) == [
        LogRecord(NOW, "callback", "REF-9", "10.0.0.9", "unknown_reference", "cc" * 32, "", "paygov paid"),
        LogRecord(NOW + 1, "lookup", "req-1", "desk", "found", "", "", "form-1"),
        LogRecord(NOW + 2, "operator", "m-1", "lan", "reveal", reason, "", ""),
        LogRecord(NOW + 3, "operator", "kpis:w", "lan", "forced run", audit, "", ""),
    ]


async def test_a_record_holds_no_content_of_the_event(store: Store) -> None:
    (a,) = generate(1)
    await one_request(store, [item(a.events[0], "portal")])
    (first,) = await claim(store)
    await store.run(units.complete, [attempt(first.message_id)])
    (data,) = [d for _, d, _ in await store.run(units.log_records, 0, 10)]
    dossier = a.events[0]["dossier"]
    for value in (a.code, *(str(v) for v in dossier.values() if isinstance(v, str) and len(v) > 3)):
        if value != first.message_id:
            assert value.encode() not in data


def test_a_record_is_parsed_back_only_from_the_bytes_lienthong_writes() -> None:
    record = LogRecord(1, "delivery", "m-1", "portal.push", "delivered", "", "", "attempt 1")
    assert LogRecord.parse(record.data()) == record
    for bad in (b"[1]", b'{"a":1}', b'[1, "delivery","m","a","o","","",""]', b'["1","delivery","","","","","",""]',
                b'[1,"other","","","","","",""]', b"not json"):  # fmt: skip
        with pytest.raises(ValueError, match="log record"):
            LogRecord.parse(bad)


async def test_two_nodes_appending_at_once_get_dense_indexes_in_commit_order(
    pg_dsn: str, tmp_path: Path
) -> None:
    a, b = (stores.make_store("postgres", tmp_path, pg_dsn) for _ in range(2))
    for s in (a, b):
        s.open()
    try:

        async def appends(store: Store, name: str) -> None:
            for n in range(30):
                record = LookupRecord(f"{name}-{n}", NOW + n, name, "", "", "", "f", "found")
                await store.run(units.record_lookup, record)

        await asyncio.gather(appends(a, "a"), appends(b, "b"))
        found = await records(a)
        assert len(found) == 60
        for name in "ab":  # each node's records in the order it appended them
            mine = [r.subject for r in found if r.actor == name]
            assert mine == [f"{name}-{n}" for n in range(30)]
    finally:
        a.close()
        b.close()
