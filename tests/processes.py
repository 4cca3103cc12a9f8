"""``lienthong`` commands in child processes, for tests that kill, signal or restart them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from lienthong.serving import bind


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
                [sys.executable, "-m", "lienthong.cli", "run", str(self.config)],
                stdout=log,
                stderr=log,
                start_new_session=True,  # a process group of its own, as a service manager would start it
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

    def signal_group(self, sig: signal.Signals) -> int:
        """Send ``sig`` to the bus's whole process group (what Ctrl-C and systemd do); returns its exit code."""
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        return self.proc.wait(timeout=30)

    def post_slowly_delivered(self, peers: Any, dossiers: int, seed: int) -> list[str]:
        """Slow the sandbox portal and EMC down (40 ms an answer), start the bus, post ``dossiers``
        dossiers' events in batches of 20 and return every delivery's message id."""
        from conftest import AUTH  # noqa: PLC0415 (conftest imports this module)
        from lienthong.sandbox import FaultPlan  # noqa: PLC0415
        from lienthong.sandbox.dossiers import generate, interleave  # noqa: PLC0415

        slow = FaultPlan(rate=1.0, kinds=("latency",), latency_ms=40)
        peers.portal.set_faults(slow)
        peers.emc.set_faults(slow)
        self.start()
        events = list(interleave(generate(dossiers, seed=seed)))
        message_ids: list[str] = []
        for start in range(0, len(events), 20):
            response = httpx.post(
                f"{self.url}/v1/events", json={"events": events[start : start + 20]}, headers=AUTH
            )
            assert response.status_code == 202
            message_ids += [m for r in response.json()["results"] for m in r["message_ids"]]
        return message_ids
