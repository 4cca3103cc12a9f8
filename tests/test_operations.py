"""What ops teams watch: outbox gauges while a destination is down, and an ingest-only node."""

from __future__ import annotations

import asyncio
import re

from conftest import AUTH, QUICK_CIRCUIT, Peers, Running, RunNode
from lienthong.sandbox import FaultPlan
from lienthong.sandbox.dossiers import generate


def gauge(text: str, name: str, destination: str) -> float:
    match = re.search(rf'^{name}{{destination="{destination}"}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} for {destination} not exported"
    return float(match.group(1))


async def test_gauges_show_pending_rows_their_age_and_dead_letters(run_node: RunNode, peers: Peers) -> None:
    retry = {"initial_delay_s": 0.05, "max_delay_s": 0.05, "jitter": 0, "max_attempts": 1000}
    running: Running = await run_node(
        dispatcher={"poll_interval_s": 0.02, "retry": retry, "circuit": QUICK_CIRCUIT}
    )
    peers.emc.set_faults(FaultPlan(rate=1.0, kinds=("error",)))  # EMC is down
    await running.post({"events": [s.events[0] for s in generate(3)]})
    await asyncio.sleep(0.3)
    down = (await running.client.get("/metrics")).text
    assert gauge(down, "lienthong_outbox_pending", "emc") == 3
    assert gauge(down, "lienthong_outbox_oldest_pending_age_seconds", "emc") >= 0.25
    assert gauge(down, "lienthong_outbox_pending", "portal") == 0

    peers.emc.set_faults(FaultPlan())  # EMC is back
    bad = generate(1, seed=99)[0].events[0]
    bad["dossier"]["level"] = 2  # EMC cannot take it: a dead letter
    await running.post(bad)
    await running.settle()
    up = (await running.client.get("/metrics")).text
    assert gauge(up, "lienthong_outbox_pending", "emc") == 0
    assert gauge(up, "lienthong_outbox_oldest_pending_age_seconds", "emc") == 0
    assert gauge(up, "lienthong_dead_letters", "emc") == 1


async def test_an_ingest_only_node_accepts_and_keeps_events_without_delivering(
    run_node: RunNode, peers: Peers
) -> None:
    running: Running = await run_node(dispatcher={"enabled": False})
    ids = (await running.post(generate(1)[0].events[0])).json()["message_ids"]
    await asyncio.sleep(0.2)
    assert (await running.client.get("/readyz")).status_code == 200
    state = (await running.client.get(f"/v1/messages/{ids[0]}", headers=AUTH)).json()
    assert state["status"] == "pending"
    assert peers.portal.received == []
