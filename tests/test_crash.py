"""Nothing accepted is lost: a bus killed with SIGKILL mid-delivery delivers everything after a restart."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import AUTH, Peers, config_dict
from lienthong.sandbox import FaultPlan
from lienthong.sandbox.dossiers import generate, interleave
from lienthong.serving import bind

pytestmark = pytest.mark.slow


def free_port() -> int:
    sock = bind()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def wait_until(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class Bus:
    """``lienthong run CONFIG`` in a child process."""

    def __init__(self, config: Path, log: Path, url: str) -> None:
        self.config, self.log, self.url = config, log, url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lienthong.cli", "run", str(self.config)], stdout=log, stderr=log
            )
        wait_until(self._ready, 30, f"the bus to be ready (log: {self.log.read_text()[-2000:]})")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"the bus exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}"
            )
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no shutdown hook runs
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


@pytest.fixture
def bus(tmp_path: Path, peers: Peers) -> Iterator[Bus]:
    port = free_port()
    config = config_dict(tmp_path, peers, server={"host": "127.0.0.1", "port": port})
    config["store"] = {"path": str(tmp_path / "lienthong.db")}  # the default, synchronous=full
    config["dispatcher"]["max_in_flight"] = 8
    path = tmp_path / "lienthong.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    bus = Bus(path, tmp_path / "bus.log", f"http://127.0.0.1:{port}")
    yield bus
    bus.stop()


def test_a_bus_killed_mid_delivery_delivers_every_accepted_event_after_restart(
    bus: Bus, peers: Peers
) -> None:
    slow = FaultPlan(rate=1.0, kinds=("latency",), latency_ms=40)
    peers.portal.set_faults(slow)
    peers.emc.set_faults(slow)
    bus.start()
    events = list(interleave(generate(25, seed=3)))
    message_ids: list[str] = []
    for start in range(0, len(events), 20):
        response = httpx.post(
            f"{bus.url}/v1/events", json={"events": events[start : start + 20]}, headers=AUTH
        )
        assert response.status_code == 202
        message_ids += [m for r in response.json()["results"] for m in r["message_ids"]]

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
