"""Review probes: `lienthong reconcile` against odd input."""

from __future__ import annotations

from pathlib import Path

import pytest

from lienthong.cli import main
from test_scheduler import cli_config  # noqa: F401 (the fixture)


@pytest.mark.parametrize("start", ["0001-01-01", "0001-01-01T00:00+14:00"])
def test_a_window_at_the_start_of_the_calendar_is_refused_not_a_traceback(
    cli_config: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    start: str,
) -> None:
    # Given a --window an operator mistyped (year 1)
    code = main(["reconcile", str(cli_config), "bank", "--window", start])
    # Then it is refused as a usage error, as "--window 2026-13-01" is, not an uncaught OverflowError
    assert code == 2, capsys.readouterr()


def test_a_run_shown_escapes_control_characters_of_file_names_and_details() -> None:
    from lienthong.cli.runs import line  # noqa: PLC0415
    from lienthong.scheduler.runs import RunRecord  # noqa: PLC0415

    # Given an attempt whose report path and detail carry a terminal escape sequence (a bank file named so)
    record = RunRecord(
        job="bank",
        run_id="bank:2026-12-01T02:00+07:00",
        attempt=1,
        window_start_ms=0,
        window_end_ms=1,
        started_ms=0,
        outcome="failed",
        ended_ms=1,
        reports=("reports/\x1b[2Jclean.html",),
        detail="StatementError: inbox/\x1b]0;owned\x07.xml: line 3",
    )
    text = line(record)
    # Then the operator's terminal is given escapes to show, not to obey
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "reports/\\x1b[2Jclean.html" in text
    assert "\\x1b]0;owned\\x07.xml" in text
