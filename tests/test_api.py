"""The inbound API over real HTTP: acceptance, idempotency, authentication, limits and bad input."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from conftest import AUTH, Peers, Running, RunNode
from lienthong.sandbox.dossiers import generate
from lienthong.store import units


def one_event() -> dict[str, object]:
    return dict(generate(1)[0].events[0])


async def is_stored(running: Running, event: dict[str, object]) -> bool:
    """Whether the bus stored ``event``: its dossier has a ledger entry (written in the same transaction)."""
    code = event["dossier"]["code"]  # type: ignore[index]
    return await running.node.store.run(units.ledger_entry, code) is not None


async def test_an_accepted_event_gets_one_message_id_per_routed_delivery(run_node: RunNode) -> None:
    running: Running = await run_node()
    response = await running.post(one_event())
    assert response.status_code == 202
    body = response.json()
    assert body["duplicate"] is False
    assert len(body["message_ids"]) == 2  # dossier.received goes to the portal and to EMC


async def test_the_same_event_twice_returns_the_original_ids_and_is_delivered_once(
    run_node: RunNode, peers: Peers
) -> None:
    running: Running = await run_node()
    event = one_event()
    first = (await running.post(event)).json()
    second = (await running.post(event)).json()
    await running.settle()
    assert second == {**first, "duplicate": True}
    keys = [str(r.key) for r in [*peers.portal.received, *peers.emc.received]]
    assert sorted(keys) == sorted(first["message_ids"])


async def test_a_batch_answers_per_event_and_marks_duplicates(run_node: RunNode) -> None:
    running: Running = await run_node()
    events = list(generate(3)[0].events[:2])
    await running.post(events[0])
    response = await running.post({"events": events})
    assert response.status_code == 202
    results = response.json()["results"]
    assert [r["duplicate"] for r in results] == [True, False]
    assert [r["event_id"] for r in results] == [e["event_id"] for e in events]


async def test_a_reused_event_id_with_other_content_is_refused_with_409(run_node: RunNode) -> None:
    running: Running = await run_node()
    event = one_event()
    await running.post(event)
    changed = copy.deepcopy(event)
    changed["dossier"]["summary"] = "something else"  # type: ignore[index]
    response = await running.post(changed)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "event_id_reused"


async def test_a_batch_with_a_conflict_stores_none_of_its_events(run_node: RunNode) -> None:
    running: Running = await run_node()
    first, second = generate(2)
    await running.post(first.events[0])
    changed = copy.deepcopy(first.events[0])
    changed["dossier"]["summary"] = "changed"
    response = await running.post({"events": [second.events[0], changed]})
    assert response.status_code == 409
    assert await is_stored(running, first.events[0])
    assert not await is_stored(running, second.events[0])


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing bearer token"),
        ({"authorization": "Bearer not-the-token"}, "invalid bearer token"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, "missing bearer token"),
    ],
)
async def test_requests_without_a_valid_token_are_refused(
    run_node: RunNode, headers: dict[str, str], message: str
) -> None:
    running: Running = await run_node()
    event = one_event()
    response = await running.post(event, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert message in response.json()["error"]["message"]
    assert not await is_stored(running, event)


async def test_a_body_over_the_limit_is_refused_with_413(run_node: RunNode) -> None:
    running: Running = await run_node(server={"max_body_bytes": 2048})
    event = one_event()
    event["dossier"]["summary"] = "x" * 4096  # type: ignore[index]
    response = await running.post(event)
    assert response.status_code == 413
    assert "2048 bytes" in response.json()["error"]["message"]
    assert not await is_stored(running, event)


async def test_a_streamed_body_without_length_is_cut_off_at_the_limit(run_node: RunNode) -> None:
    running: Running = await run_node(server={"max_body_bytes": 2048})

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1024

    response = await running.client.post("/v1/events", content=chunks(), headers=AUTH)
    assert response.status_code == 413


async def test_malformed_json_is_answered_400_naming_the_problem_and_nothing_is_stored(
    run_node: RunNode,
) -> None:
    running: Running = await run_node()
    event = one_event()
    truncated = json.dumps(event).encode()[:-20]
    response = await running.client.post("/v1/events", content=truncated, headers=AUTH)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "malformed_json"
    assert "unexpected end of data: line 1" in error["message"]
    assert not await is_stored(running, event)


async def test_an_invalid_event_is_answered_422_with_the_field_path(run_node: RunNode) -> None:
    running: Running = await run_node()
    event = one_event()
    event["type"] = "dossier.recieved"
    response = await running.post({"events": [one_event(), event]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["path"] == "events[1].type"
    assert "dossier.received" in error["message"]
    assert not await is_stored(running, event)


async def test_an_event_without_a_dossier_code_is_refused_with_its_path(run_node: RunNode) -> None:
    running: Running = await run_node()
    event = one_event()
    del event["dossier"]["code"]  # type: ignore[attr-defined]
    response = await running.post(event)
    assert response.status_code == 422
    assert response.json()["error"]["path"] == "dossier.code"


async def test_a_json_array_body_is_refused_with_the_expected_shape(run_node: RunNode) -> None:
    running: Running = await run_node()
    response = await running.post([one_event()])
    assert response.status_code == 400
    assert '{"events": [...]}' in response.json()["error"]["message"]


async def test_a_batch_over_the_event_limit_is_refused(run_node: RunNode) -> None:
    running: Running = await run_node(server={"max_batch_events": 2})
    events = [s.events[0] for s in generate(3)]
    response = await running.post({"events": events})
    assert response.status_code == 422
    assert "at most 2 events" in response.json()["error"]["message"]


async def test_a_message_shows_its_state_and_attempts(run_node: RunNode) -> None:
    running: Running = await run_node()
    ids = (await running.post(one_event())).json()["message_ids"]
    await running.settle()
    response = await running.client.get(f"/v1/messages/{ids[0]}", headers=AUTH)
    assert response.status_code == 200
    message = response.json()
    assert message["status"] == "delivered"
    assert message["attempts"] == 1
    assert [a["outcome"] for a in message["history"]] == ["delivered"]


async def test_an_unknown_message_is_404_and_messages_need_a_token(run_node: RunNode) -> None:
    running: Running = await run_node()
    assert (await running.client.get("/v1/messages/m-nope", headers=AUTH)).status_code == 404
    assert (await running.client.get("/v1/messages/m-nope")).status_code == 401


async def test_health_readiness_and_metrics_are_served(run_node: RunNode) -> None:
    running: Running = await run_node()
    await running.post(one_event())
    await running.settle()
    assert (await running.client.get("/healthz")).json() == {"status": "ok"}
    assert (await running.client.get("/readyz")).status_code == 200
    metrics = (await running.client.get("/metrics")).text
    assert 'lienthong_events_received_total{outcome="accepted",type="dossier.received"} 1.0' in metrics
    assert 'lienthong_outbox_pending{destination="portal"} 0.0' in metrics
    assert (
        'lienthong_deliveries_total{destination="emc",operation="TrackingMCDT",outcome="delivered"} 1.0'
        in metrics
    )


async def test_the_server_keeps_serving_after_bad_input(run_node: RunNode) -> None:
    running: Running = await run_node()
    for body in (b"\xff\xfe", b"null", b"[]", b"{}", b'{"events": []}'):
        response = await running.client.post("/v1/events", content=body, headers=AUTH)
        assert response.status_code in (400, 422), body
    assert (await running.post(one_event())).status_code == 202


async def test_when_the_store_process_dies_ingest_answers_503_until_a_new_process_takes_over(
    run_node: RunNode,
) -> None:
    running: Running = await run_node()
    accepted = await running.post(one_event())
    assert accepted.status_code == 202
    pid = running.node.store.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # Any store call (this POST, or the dispatcher's next claim) finds the process gone and starts a new
    # one; until then each POST answers 503, and nothing the dead process did not commit was acknowledged.
    refused: list[dict[str, object]] = []
    for n in range(300):
        event = {**one_event(), "event_id": f"after-the-kill-{n}"}
        response = await running.post(event)
        if response.status_code == 202:
            break
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "store_unavailable"
        assert response.headers["retry-after"] == "5"
        refused.append(event)
        await asyncio.sleep(0.01)
    assert response.status_code == 202
    assert running.node.store.pid not in (None, pid)
    for event in refused:  # sent again, as the 503 invited
        assert (await running.post(event)).status_code == 202
    assert (await running.client.get("/readyz")).status_code == 200
    assert (await running.client.get("/healthz")).status_code == 200
    message_id = accepted.json()["message_ids"][0]
    assert (await running.client.get(f"/v1/messages/{message_id}", headers=AUTH)).status_code == 200


async def test_a_frozen_store_answers_503_within_its_deadline_and_recovers(
    run_node: RunNode, tmp_path: Path
) -> None:
    store = {"path": str(tmp_path / "frozen.db"), "synchronous": "normal", "deadline_s": 0.5}
    running: Running = await run_node(store=store)
    assert (await running.post(one_event())).status_code == 202
    pid = running.node.store.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # as a frozen disk: the store's process takes calls and answers none
    try:
        started = time.monotonic()
        frozen = await running.post({**one_event(), "event_id": "sent-while-frozen"})
        ready = await running.client.get("/readyz")
        metrics = await running.client.get("/metrics")
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert frozen.status_code == 503
    assert frozen.headers["retry-after"] == "5"
    assert "did not answer within 0.5 s" in frozen.json()["error"]["message"]
    assert ready.status_code == 503
    assert metrics.status_code == 200  # served without the store's gauges
    assert elapsed < 5
    again = await running.post({**one_event(), "event_id": "sent-while-frozen"})  # sent again: taken once
    assert again.status_code == 202


def partial_follow_up(event: dict[str, object]) -> dict[str, object]:
    """A later event of the same dossier carrying only its code and new status, as a provincial system
    may send one: the fields it leaves out keep the values the ledger already has."""
    dossier = event["dossier"]
    return {
        "event_id": f"{event['event_id']}-status",
        "type": "dossier.status_changed",
        "occurred_at": "2026-11-23T10:00:00+07:00",
        "unit_code": event["unit_code"],
        "dossier": {"code": dossier["code"], "status": "5"},  # type: ignore[index]
    }


async def test_a_batch_keeps_what_its_earlier_events_said_of_a_dossier_as_separate_requests_do(
    run_node: RunNode,
) -> None:
    """The ledger keeps a field an event leaves out (``dossiers`` upsert, COALESCE). A batch holding a
    dossier's full event then a partial one wrote the partial one alone: the dossier lost its channel and
    due date (the online and on-time KPIs read them)."""
    running: Running = await run_node()
    one, other = (stream.events[0] for stream in generate(2))
    await running.post(one)
    await running.post(partial_follow_up(one))
    await running.post({"events": [other, partial_follow_up(other)]})

    for event in (one, other):  # sent apart, and in one batch
        dossier: dict[str, Any] = event["dossier"]
        entry = await running.node.store.run(units.ledger_entry, dossier["code"])
        assert entry is not None
        assert entry.status == "5"
        said = (dossier["channel"], dossier["due_at"], dossier["received_at"], dossier["procedure"]["code"])
        assert (entry.channel, entry.due_at, entry.received_at, entry.procedure_code) == said
        assert None not in said
