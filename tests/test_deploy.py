"""The service files a province installs: the systemd unit (checked by systemd-analyze) and the
Dockerfile (no Docker engine runs on these machines: its instructions are checked as text)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lienthong.config import DispatcherConfig

DEPLOY = Path(__file__).parent.parent / "deploy"
UNIT = DEPLOY / "systemd" / "lienthong.service"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"


def settings(unit: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in unit.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            found[key.strip()] = value.strip()
    return found


def test_the_unit_is_valid_for_systemd(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        reason = "systemd-analyze is not installed (.ci/run installs systemd)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    lienthong = str(Path(sys.executable).parent / "lienthong")  # the one installed with these tests
    unit = UNIT.read_text(encoding="utf-8").replace("/opt/lienthong/bin/lienthong", lienthong)
    copy = tmp_path / "lienthong.service"
    copy.write_text(unit, encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""  # systemd says "ignoring" for a value it cannot parse, and exits 0


def test_the_unit_stops_the_node_in_order_and_gives_it_time() -> None:
    unit = settings(UNIT.read_text(encoding="utf-8"))
    assert unit["KillMode"] == "mixed"  # SIGTERM to the server; it stops its own store process
    assert unit["KillSignal"] == "SIGTERM"
    grace = DispatcherConfig().shutdown_grace_s
    assert float(unit["TimeoutStopSec"]) >= grace + 5, (
        "TimeoutStopSec must outlast dispatcher.shutdown_grace_s"
    )
    assert unit["ExecStart"].split()[1:3] == ["run", "/etc/lienthong/lienthong.yaml"]
    assert set(unit["RestartPreventExitStatus"].split()) == {"2", "3"}  # cannot start: no restart loop


def test_the_dockerfile_runs_the_node_unprivileged_with_a_liveness_check() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = re.findall(r"^([A-Z]+)\s+(.*)$", text, re.MULTILINE)
    users = [value for name, value in instructions if name == "USER"]
    assert users == ["lienthong"]
    assert re.search(r"^HEALTHCHECK .*\\\n\s+CMD .*http://127\.0\.0\.1:8080/healthz", text, re.MULTILINE)
    assert ("STOPSIGNAL", "SIGTERM") in instructions
    assert ("ENTRYPOINT", '["lienthong"]') in instructions
    assert "LIENTHONG_SERVER__HOST=0.0.0.0" in text  # the config's default listens on loopback only
    assert "pip install --no-cache-dir /wheels/*.whl" in text  # the runtime install, no dev extras
