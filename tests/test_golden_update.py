"""`lienthong mapping test --update`: it rewrites what changed, says so file by file, removes stale files,
and never turns a case that expected output into one that expects an error (or back) without being told."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import PORTAL_PROGRESS_CASES
from lienthong.cli import main

CASES = PORTAL_PROGRESS_CASES


def break_spec(specs: Path) -> None:
    """A typo that makes every record without the misspelt key fail: a regression, not a refusal."""
    spec = specs / "portal_progress.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(
        text.replace(
            'ChucDanh: {from: dossier.step.title, default: ""}',
            "ChucDanh: {from: dossier.step.titel, required: true}",
        )
    )


def test_update_refuses_to_turn_an_expected_output_into_an_expected_error(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = specs / CASES / "processing-step.expected.json"
    before = expected.read_bytes()
    break_spec(specs)

    assert main(["mapping", "test", str(specs), "--update"]) == 1

    out = capsys.readouterr().out
    assert "REFUSED  portal_progress / processing-step" in out
    assert "ChucDanh (from dossier.step.titel): required but missing" in out
    assert "--accept-errors" in out
    assert "3 cases, 2 failed (2 refused: they would change what the case expects), 0 files written" in out
    assert expected.read_bytes() == before
    assert not (specs / CASES / "processing-step.error.txt").exists()
    # and the regression stays visible on the next plain run
    assert main(["mapping", "test", str(specs)]) == 1
    assert "FAIL     portal_progress / processing-step" in capsys.readouterr().out


def test_update_with_accept_errors_writes_the_error_and_removes_the_stale_expected_output(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    break_spec(specs)

    assert main(["mapping", "test", str(specs), "--update", "--accept-errors"]) == 0

    out = capsys.readouterr().out
    folder = specs / CASES
    assert f"removed  {folder / 'processing-step.expected.json'}" in out
    assert f"new      {folder / 'processing-step.error.txt'}" in out
    assert not (folder / "processing-step.expected.json").exists()
    assert "required but missing" in (folder / "processing-step.error.txt").read_text(encoding="utf-8")
    assert main(["mapping", "test", str(specs)]) == 0


def test_a_case_expecting_both_output_and_an_error_fails(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What --update used to leave behind: an error file beside the stale expected output, then `ok`."""
    folder = specs / CASES
    break_spec(specs)
    (folder / "processing-step.error.txt").write_text(
        "ChucDanh (from dossier.step.titel): required but missing"
        " [mapping portal_progress, record evt-000.21.32.H56-261123-00000-1]\n",
        encoding="utf-8",
    )

    assert main(["mapping", "test", str(specs)]) == 1

    out = capsys.readouterr().out
    assert "FAIL     portal_progress / processing-step" in out
    assert "both processing-step.expected.json and processing-step.error.txt" in out


def test_update_refuses_to_turn_an_expected_error_into_an_expected_output(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The mirror regression: a record that must be refused (no officer) is accepted after a change."""
    spec = specs / "portal_progress.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace(
            "NguoiXuLy: {from: dossier.step.officer, required: true}", "NguoiXuLy: dossier.step.officer"
        )
    )
    folder = specs / CASES

    assert main(["mapping", "test", str(specs), "--update"]) == 1
    out = capsys.readouterr().out
    assert "REFUSED  portal_progress / error-no-officer" in out
    assert "--accept-outputs" in out
    assert not (folder / "error-no-officer.expected.json").exists()

    assert main(["mapping", "test", str(specs), "--update", "--accept-outputs"]) == 0
    out = capsys.readouterr().out
    assert f"removed  {folder / 'error-no-officer.error.txt'}" in out
    assert f"new      {folder / 'error-no-officer.expected.json'}" in out


def test_update_reports_each_file_it_changes_or_writes_and_leaves_the_rest(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = specs / CASES
    expected = folder / "processing-step.expected.json"
    expected.write_text(expected.read_text(encoding="utf-8").replace('"TrangThai": "4"', '"TrangThai": "5"'))
    shutil.copy(folder / "step-with-own-times.input.json", folder / "another-step.input.json")
    untouched = (folder / "step-with-own-times.expected.json").stat().st_mtime_ns

    assert main(["mapping", "test", str(specs), "--update"]) == 0

    out = capsys.readouterr().out
    assert f"changed  {expected}" in out
    assert f"new      {folder / 'another-step.expected.json'}" in out
    assert "step-with-own-times.expected.json" not in out
    assert (folder / "step-with-own-times.expected.json").stat().st_mtime_ns == untouched
    assert "4 cases, 0 failed, 2 files written, 0 removed" in out
    assert '"TrangThai": "4"' in expected.read_text(encoding="utf-8")


def test_update_never_writes_an_error_for_a_new_case_without_accept_errors(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = specs / CASES
    shutil.copy(folder / "error-no-officer.input.json", folder / "error-again.input.json")

    assert main(["mapping", "test", str(specs), "--update"]) == 1
    assert "REFUSED  portal_progress / error-again" in capsys.readouterr().out
    assert not (folder / "error-again.error.txt").exists()

    assert main(["mapping", "test", str(specs), "--update", "--accept-errors"]) == 0
    assert f"new      {folder / 'error-again.error.txt'}" in capsys.readouterr().out


def test_update_removes_expected_files_whose_input_is_gone(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = specs / CASES
    (folder / "step-with-own-times.input.json").unlink()
    (folder / "error-no-officer.input.json").rename(folder / "no-officer.input.json")

    assert main(["mapping", "test", str(specs)]) == 1
    out = capsys.readouterr().out
    assert f"stale    {folder / 'step-with-own-times.expected.json'}" in out
    assert f"stale    {folder / 'error-no-officer.error.txt'}" in out

    assert main(["mapping", "test", str(specs), "--update", "--accept-errors"]) == 0
    out = capsys.readouterr().out
    assert f"removed  {folder / 'step-with-own-times.expected.json'}" in out
    assert f"removed  {folder / 'error-no-officer.error.txt'}" in out
    assert f"new      {folder / 'no-officer.error.txt'}" in out
    assert sorted(p.name for p in folder.iterdir()) == [
        "no-officer.error.txt",
        "no-officer.input.json",
        "processing-step.expected.json",
        "processing-step.input.json",
    ]
