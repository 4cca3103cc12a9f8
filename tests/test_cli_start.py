"""A node that cannot start says why in one line and exits non-zero (issue 14 §5): the port taken, the
store held by another node, a config that cannot be read."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from processes import Bus

pytestmark = pytest.mark.slow


def run(config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIENTHONG_")}
    return subprocess.run(
        [sys.executable, "-m", "lienthong.cli", "run", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_a_port_already_taken_is_one_line_and_exit_2(bus: Bus, tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        config = json.loads(bus.config.read_text())
        config["server"]["port"] = taken.getsockname()[1]
        path = tmp_path / "taken.yaml"
        path.write_text(json.dumps(config), encoding="utf-8")
        done = run(path)
    finally:
        taken.close()
    assert done.returncode == 2
    line = one_line(done)
    assert line.startswith(f"cannot listen on 127.0.0.1:{config['server']['port']}: ")
    assert "(server.port)" in line


def test_a_store_another_node_holds_is_one_line_and_exit_3(bus: Bus, tmp_path: Path) -> None:
    bus.start()
    config = json.loads(bus.config.read_text())
    config["server"]["port"] = 0
    path = tmp_path / "second.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    done = run(path)
    assert done.returncode == 3
    line = one_line(done)
    assert line.startswith("cannot start: the store ")
    assert "is in use by another node" in line


def test_a_config_that_cannot_be_read_is_exit_2(tmp_path: Path) -> None:
    done = run(tmp_path / "nowhere.yaml")
    assert done.returncode == 2
    assert "nowhere.yaml cannot read: No such file or directory" in done.stderr
    assert "Traceback" not in done.stderr
