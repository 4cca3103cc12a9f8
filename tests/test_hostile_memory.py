"""The node's memory stays under a bound while hostile requests of every kind run at once (issue 10).

Runs ``benchmarks/bench_hostile.py`` briefly against a real ``lienthong run`` (the server's process and the
store's) and reads its JSON report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
BOUND_MB = 400


def test_the_node_stays_under_its_memory_bound_under_every_attack_at_once() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "bench_hostile.py",
            "--smoke",
            "--seconds",
            "4",
            "--bound-mb",
            str(BOUND_MB),
            "--json",
        ],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=55,
        check=False,
    )
    report = json.loads(done.stdout)
    assert report["peak_mb"] < BOUND_MB, report
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes = report["outcomes"]
    assert set(outcomes["large bodies"]) <= {"202", "503"}
    assert "503" in outcomes["large bodies"]  # the bytes in flight were bounded
    assert set(outcomes["deep nesting"]) <= {"422", "503"}
    assert set(outcomes["huge answers"]) == {"503"}
    assert "all sent" not in outcomes["huge headers"]
