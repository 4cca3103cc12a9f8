"""Nothing accepted is lost: a bus killed with SIGKILL mid-delivery delivers everything after a restart."""

from __future__ import annotations

import collections
import json

import httpx
import pytest

from conftest import AUTH, Peers
from lienthong.sandbox import FaultPlan
from lienthong.sandbox.dossiers import generate
from processes import Bus, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_bus(request: pytest.FixtureRequest) -> Bus:
    """The bus on SQLite, then on PostgreSQL."""
    bus: Bus = request.getfixturevalue("bus" if request.param == "sqlite" else "pg_bus")
    return bus


def test_a_bus_killed_mid_delivery_delivers_every_accepted_event_after_restart(
    any_bus: Bus, peers: Peers
) -> None:
    bus = any_bus
    message_ids = bus.post_slowly_delivered(peers, dossiers=25, seed=3)

    def delivered_so_far() -> int:
        return len(peers.portal.received) + len(peers.emc.received)

    wait_until(lambda: delivered_so_far() >= 15, 30, "some deliveries")
    bus.kill()
    assert delivered_so_far() < len(message_ids), "the kill came too late to interrupt delivery"

    peers.portal.set_faults(FaultPlan())
    peers.emc.set_faults(FaultPlan())
    bus.start()

    def all_delivered() -> bool:
        return {r.key for r in [*peers.portal.received, *peers.emc.received]} >= set(message_ids)

    wait_until(all_delivered, 60, "every accepted event to be delivered")
    records = [*peers.portal.received, *peers.emc.received]
    per_key = collections.Counter(r.key for r in records)
    assert set(per_key) == set(message_ids)  # every delivery arrived, under its own idempotency key
    for key, count in per_key.items():
        bodies = {json.dumps(r.body, sort_keys=True) for r in records if r.key == key}
        assert len(bodies) == 1, f"{key} arrived {count} times with different content"
    for stream in generate(25, seed=3):
        assert peers.portal.dossiers[stream.code]["TrangThaiHoSo"] == "10"  # the last step won
    for message_id in message_ids:
        state = httpx.get(f"{bus.url}/v1/messages/{message_id}", headers=AUTH).json()
        assert state["status"] == "delivered", state
