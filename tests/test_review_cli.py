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
