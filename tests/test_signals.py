"""Ctrl-C and SIGTERM, sent to the whole process group as a terminal and systemd do, stop in order.

Given `lienthong run` or `lienthong demo --keep-running` started in a process group of its own, when the
group gets SIGINT or SIGTERM, then the command exits 0 with no traceback, deliveries under way finish or
stay in the store, and the next start delivers everything accepted before the signal.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import AUTH, Peers
from lienthong.sandbox import FaultPlan
from processes import Bus, free_port, wait_until

pytestmark = pytest.mark.slow

UNCLEAN = ("Traceback", "shutdown failed", "Exception", "exit code")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_to_the_group_stops_run_in_order_and_loses_nothing(
    bus: Bus, peers: Peers, sig: signal.Signals
) -> None:
    message_ids = bus.post_slowly_delivered(peers, dossiers=20, seed=5)
    wait_until(lambda: len(peers.portal.received) >= 5, 30, "some deliveries")

    code = bus.signal_group(sig)

    log = bus.log.read_text()
    assert code == 0, log[-3000:]
    for word in UNCLEAN:
        assert word not in log, log[-3000:]
    assert "stopped" in log
    delivered_before = {r.key for r in [*peers.portal.received, *peers.emc.received]}
    assert delivered_before < set(message_ids), "the signal came too late to interrupt delivery"

    peers.portal.set_faults(FaultPlan())
    peers.emc.set_faults(FaultPlan())
    bus.start()
    wait_until(
        lambda: {r.key for r in [*peers.portal.received, *peers.emc.received]} >= set(message_ids),
        60,
        "every accepted event to be delivered after the restart",
    )
    for message_id in message_ids:
        assert httpx.get(f"{bus.url}/v1/messages/{message_id}", headers=AUTH).json()["status"] == "delivered"


@pytest.fixture
def demos() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_demo(
    tmp_path: Path, demos: list[subprocess.Popen[str]], *args: str
) -> tuple[subprocess.Popen[str], Path]:
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lienthong.cli", "demo", "--events", "10", "--fault-rate", "0", *args],
            stdout=out,
            stderr=out,
            text=True,
            start_new_session=True,
            cwd=tmp_path,
        )
    demos.append(proc)
    return proc, log


def demo_workdir(log: Path) -> Path:
    wait_until(lambda: "lienthong.yaml" in log.read_text(), 60, "the demo to write its config")
    match = re.search(r"config (\S+lienthong\.yaml)", log.read_text())
    assert match is not None, log.read_text()
    return Path(match.group(1)).parent


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_demo_kept_running_stops_quietly_and_removes_its_files(
    tmp_path: Path, demos: list[subprocess.Popen[str]], sig: signal.Signals
) -> None:
    port = free_port()
    proc, log = start_demo(tmp_path, demos, "--keep-running", "--port", str(port))
    workdir = demo_workdir(log)
    wait_until(lambda: "Ctrl-C to stop" in log.read_text(), 120, "the demo's summary")
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200  # the port it was given
    token = re.search(r"bearer token (\S+)", log.read_text())
    assert token is not None
    answer = httpx.get(
        f"http://127.0.0.1:{port}/v1/messages/none", headers={"authorization": f"Bearer {token[1]}"}
    )
    assert answer.status_code == 404  # the printed token is accepted

    os.killpg(proc.pid, sig)

    assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    text = log.read_text()
    for word in UNCLEAN:
        assert word not in text, text[-3000:]
    assert not workdir.exists(), f"{workdir} was left behind"


def test_a_demo_stopped_before_its_summary_exits_zero_and_removes_its_files(
    tmp_path: Path, demos: list[subprocess.Popen[str]]
) -> None:
    proc, log = start_demo(tmp_path, demos)
    workdir = demo_workdir(log)

    os.killpg(proc.pid, signal.SIGTERM)

    assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "stopped before the summary" in text
    for word in UNCLEAN:
        assert word not in text, text[-3000:]
    assert not workdir.exists()


@pytest.mark.parametrize("delay_s", [0.8, 1.6])
def test_a_stop_signal_while_starting_up_exits_zero_quietly(bus: Bus, delay_s: float) -> None:
    with bus.log.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lienthong.cli", "run", str(bus.config)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    time.sleep(delay_s)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, bus.log.read_text()[-3000:]
    for word in UNCLEAN:
        assert word not in bus.log.read_text()
    bus.start()  # and the store it may have begun to open opens again


def test_a_stop_signal_arriving_while_a_class_is_made_still_stops_quietly() -> None:
    """Python wraps an exception raised in ``__set_name__`` in a RuntimeError: a SIGTERM landing in an
    import (rich's thread-local class, under httpx) failed the start with a traceback instead of a quiet 0."""
    from lienthong.cli import _stopped_early  # noqa: PLC0415

    class Signals:
        def __set_name__(self, owner: type, name: str) -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs here, between two bytecodes

    reached = False
    with _stopped_early():
        type("Made", (), {"field": Signals()})
        reached = True
    assert not reached


EARLY = """
import os, signal, sys
sys.argv = ["-m", *sys.argv[1:]]  # as `python -m lienthong.cli` has it while the package imports
import lienthong.cli
os.kill(os.getpid(), signal.SIGTERM)  # as if it landed while the command's modules were imported
sys.exit(lienthong.cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("command", "code"), [("run", 0), ("about", 128 + signal.SIGTERM)])
def test_a_stop_signal_during_the_imports_is_kept_for_the_command(bus: Bus, command: str, code: int) -> None:
    """A SIGTERM before any handler of ours was in place killed `run` on a loaded machine (the imports take
    a second or more); it is noted, and `run` stops quietly before starting, other commands as killed."""
    args = [command, str(bus.config)] if command == "run" else [command]
    done = subprocess.run(
        [sys.executable, "-c", EARLY, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == code, done.stderr[-3000:]
    for word in UNCLEAN:
        assert word not in done.stderr
    assert "serving" not in done.stderr
