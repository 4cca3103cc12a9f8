"""``lienthong sandbox all``: every kind of peer served, with destinations that reach them as printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lienthong.cli import SANDBOX_KINDS, main

pytestmark = pytest.mark.slow


def test_the_printed_destinations_reach_every_peer_and_ctrl_c_stops_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    here = tmp_path / "cwd"
    here.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lienthong.cli", "sandbox", "all", "--citizens", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=here,
    )
    try:
        assert proc.stdout is not None
        printed = ""
        while not printed.rstrip().endswith("}") or printed.count("{") != printed.count("}"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            printed += line
        destinations = json.loads(printed)["destinations"]
        assert set(destinations) == set(SANDBOX_KINDS)
        config = {
            "auth": {"tokens": []},
            "store": {"path": str(tmp_path / "l.db")},
            "destinations": destinations,
            "routes": [{"on": "payment.confirmed", "deliver": [{"to": "vnpt", "operation": "issue"}]}],
        }
        path = tmp_path / "lienthong.yaml"
        path.write_text(json.dumps(config), encoding="utf-8")

        assert main(["check", str(path), "--connect"]) == 0, capsys.readouterr()
        out = capsys.readouterr().out
        assert out.count(" ok ") >= len(SANDBOX_KINDS), out
        assert "portal login ok" in out
        assert "Viettel login ok" in out
        assert "WSDLs read, operations present" in out
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert list(here.iterdir()) == []  # it wrote nothing where it was started (it once left the demo's key)
