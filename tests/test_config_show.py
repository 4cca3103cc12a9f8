"""``lienthong config show``: the file as written, or the effective config with secrets masked; and no
traceback when the reader of a command's output goes away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLE_ENV
from lienthong.cli import MASK, main

EXAMPLE = Path(__file__).parent.parent / "examples" / "lienthong.yaml"


def test_resolved_fills_defaults_and_references_and_masks_every_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, f"{value}-{name.lower()}-value")  # each secret recognisable
    monkeypatch.setenv("CITIZEN_AUDIT_KEY", "an-audit-key-of-sixteen-plus-value")
    assert main(["config", "show", str(EXAMPLE), "--resolved"]) == 0
    out = capsys.readouterr().out
    effective = yaml.safe_load(out)
    assert effective["dispatcher"]["retry"]["max_attempts"] == 12  # a default, filled in
    assert (
        effective["destinations"]["portal"]["dstcode"] == "D1-portal_dstcode-value"
    )  # a reference, resolved
    for secret in ("PORTAL_PASSWORD", "EMC_TOKEN", "PAYGOV_SECRET", "VNPT_ACPASS", "LGSP_CLIENT_SECRET"):
        assert f"{secret.lower()}-value" not in out, secret
    assert effective["destinations"]["portal"]["password"] == MASK
    assert effective["citizens"]["audit_key"] == MASK
    viettel = effective["destinations"]["viettel"]
    assert viettel["token_as"] != MASK  # a setting whose name only mentions a token


def test_without_resolved_the_file_is_shown_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out == EXAMPLE.read_text(encoding="utf-8")


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    # `true` exits without reading: the schema (70 KB) cannot be written, whatever the pipe's buffer.
    command = f"{sys.executable} -m lienthong.cli config schema | true"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr
