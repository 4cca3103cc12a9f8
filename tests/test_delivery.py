"""Delivery through the dispatcher to real sandbox peers: retries, dead letters, Retry-After, ordering."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from conftest import AUTH, QUICK_CIRCUIT, Peers, Running, RunNode, config_dict
from lienthong.sandbox import FaultPlan
from lienthong.sandbox.dossiers import generate, interleave


async def message(running: Running, message_id: str) -> dict[str, Any]:
    response = await running.client.get(f"/v1/messages/{message_id}", headers=AUTH)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def post_received(running: Running) -> tuple[str, str]:
    """Post one dossier.received; returns its (portal, emc) message ids."""
    ids = (await running.post(generate(1)[0].events[0])).json()["message_ids"]
    return ids[0], ids[1]


async def test_a_failed_delivery_is_retried_until_it_succeeds(run_node: RunNode, peers: Peers) -> None:
    running: Running = await run_node()
    peers.emc.inject("error", "drop")
    _, emc_id = await post_received(running)
    await running.settle()
    state = await message(running, emc_id)
    assert state["status"] == "delivered"
    assert [a["outcome"] for a in state["history"]] == ["retry", "retry", "delivered"]
    assert (
        running.sample(
            "lienthong_deliveries_total", destination="emc", operation="TrackingMCDT", outcome="retry"
        )
        == 2
    )


async def test_exhausted_retries_become_a_dead_letter_keeping_the_last_error(
    run_node: RunNode, peers: Peers
) -> None:
    running: Running = await run_node()  # max_attempts 4
    peers.emc.inject("error", "error", "error", "error")
    _, emc_id = await post_received(running)
    await running.settle()
    state = await message(running, emc_id)
    assert state["status"] == "dead"
    assert state["attempts"] == 4
    assert "http 503" in str(state["last_error"])
    assert "gave up after 4 attempts" in str(state["last_error"])
    assert (
        running.sample(
            "lienthong_deliveries_total", destination="emc", operation="TrackingMCDT", outcome="dead"
        )
        == 1
    )


async def test_a_permanent_error_becomes_a_dead_letter_without_retries(
    run_node: RunNode, peers: Peers
) -> None:
    running: Running = await run_node()
    event = generate(1)[0].events[0]
    event["dossier"]["procedure"]["code"] = "9.999999"  # not in the sandbox portal's catalogue
    portal_id = (await running.post(event)).json()["message_ids"][0]
    await running.settle()
    state = await message(running, portal_id)
    assert state["status"] == "dead"
    assert state["attempts"] == 1
    assert "MaTTHC" in str(state["last_error"])
    assert "remote code 400" in str(state["last_error"])


async def test_a_mapping_error_is_a_dead_letter_naming_the_record_the_field_and_the_mapping(
    run_node: RunNode, peers: Peers
) -> None:
    running: Running = await run_node()
    event = generate(1)[0].events[0]
    event["dossier"]["status"] = "recieved"
    portal_id, emc_id = (await running.post(event)).json()["message_ids"]
    await running.settle()
    for message_id, field, mapping in (
        (portal_id, "TrangThaiHoSo", "portal_dossier"),
        (emc_id, "Status", "emc_tracking"),
    ):
        state = await message(running, message_id)
        assert state["status"] == "dead"
        assert state["attempts"] == 1
        error = str(state["last_error"])
        assert f"{field} (from dossier.status): unknown code 'recieved' in table portal_status" in error
        assert f"[mapping {mapping}, record {event['event_id']}]" in error
    assert peers.portal.received == []
    assert peers.emc.received == []


async def test_retry_after_is_honoured_over_a_shorter_backoff(run_node: RunNode, peers: Peers) -> None:
    running: Running = await run_node()  # backoff 10 ms
    peers.emc.set_faults(FaultPlan(retry_after_s=2))
    peers.emc.inject("throttle")
    _, emc_id = await post_received(running)
    state: dict[str, Any] = {}
    for _ in range(500):
        state = await message(running, emc_id)
        if state["attempts"] == 1:
            break
        await asyncio.sleep(0.01)
    assert state["status"] == "pending"
    wait_ms = state["next_attempt_ms"] - state["updated_ms"]
    assert 1900 <= wait_ms <= 2100
    assert "http 429" in str(state["last_error"])


async def test_each_dossier_reaches_each_destination_in_order_under_concurrency(
    run_node: RunNode, peers: Peers
) -> None:
    retry = {"initial_delay_s": 0.01, "max_delay_s": 0.2, "jitter": 0.5, "max_attempts": 30}
    running: Running = await run_node(
        dispatcher={"max_in_flight": 32, "poll_interval_s": 0.02, "retry": retry, "circuit": QUICK_CIRCUIT}
    )
    faults = FaultPlan(rate=0.3, kinds=("latency", "error", "drop"), latency_ms=15, seed=3)
    peers.portal.set_faults(faults)
    peers.emc.set_faults(faults)
    streams = generate(30, seed=11)
    events = list(interleave(streams))  # every dossier's first event, then every second one, ...
    for start in range(0, len(events), 10):
        assert (await running.post({"events": events[start : start + 10]})).status_code == 202
    await running.settle(timeout_s=40)

    expected = {s.code: [e["dossier"]["status"] for e in s.events] for s in streams}
    portal_order: dict[str, list[str]] = {}
    for record in peers.portal.received:
        status = str(record.body.get("TrangThaiHoSo") or record.body.get("TrangThai"))
        seen = portal_order.setdefault(record.dossier_code, [])
        if not seen or seen[-1] != status:  # a redelivery after a drop repeats the same step
            seen.append(status)
    codes = {"received": "1", "processing": "4", "processed": "9", "returned": "10"}
    for code, statuses in expected.items():
        assert portal_order[code] == [codes[s] for s in statuses], code
    assert (
        running.sample(
            "lienthong_deliveries_total", destination="portal", operation="DongBoHoSoMC", outcome="dead"
        )
        == 0
    )


async def test_a_destination_with_its_own_retry_keys_gives_up_its_way_and_the_others_keep_the_dispatchers(
    run_node: RunNode, peers: Peers, tmp_path: Path
) -> None:
    destinations = config_dict(tmp_path, peers)["destinations"]
    destinations["emc"]["retry"] = {"max_attempts": 2}  # the rest of dispatcher.retry is kept
    running: Running = await run_node(destinations=destinations)  # dispatcher.retry: max_attempts 4
    peers.emc.inject("error", "error", "error")
    peers.portal.inject("error", "error", "error")
    portal_id, emc_id = await post_received(running)
    await running.settle()
    emc, portal = await message(running, emc_id), await message(running, portal_id)
    assert (emc["status"], emc["attempts"]) == ("dead", 2)
    assert "gave up after 2 attempts" in str(emc["last_error"])
    assert (portal["status"], portal["attempts"]) == ("delivered", 4)
