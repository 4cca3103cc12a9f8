"""Long runs say how far they got: the demo its phases (``reconcile``'s progress: test_reconcile_progress)."""

from __future__ import annotations

import re

import pytest

from lienthong.cli import main

PHASES = [
    "starting sandbox peers: portal, emc, population, paygov, vnpt, viettel, province",
    "bus serving on http://127.0.0.1:",
    "prefilling 10 e-forms from the population database",
    "sending 40 events of 10 dossiers",
    "asking for 8 fees online",
    "8 payments initiated",
    "waiting for every delivery to settle",
    "settled: nothing pending",
    "stopping:",
]


@pytest.mark.slow
def test_the_demo_says_each_phase_in_order_with_its_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--events", "10", "--fault-rate", "0"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("demo: ")]
    positions = [next(i for i, line in enumerate(said) if phase in line) for phase in PHASES]
    assert positions == sorted(positions)
    timed = [line for line in said if re.match(r"demo: +\d+\.\d s  ", line)]
    assert len(timed) >= 6  # the traffic's phases carry the seconds since it began
    seconds = [float(line.split()[1]) for line in timed]
    assert seconds == sorted(seconds)


@pytest.mark.slow
def test_the_demo_says_nothing_but_the_summary_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--events", "5", "--fault-rate", "0", "--json"]) == 0
    captured = capsys.readouterr()
    assert "demo: " not in captured.err
    assert captured.out.startswith("{")
