"""Assert files (`NAME.assert.yaml`): partial expectations beside or instead of a whole expected file."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import PORTAL_PROGRESS_CASES
from lienthong.cli import main
from lienthong.mappings.golden import run_golden
from lienthong.mappings.golden_checks import load_assert_file

CASES = PORTAL_PROGRESS_CASES


def only_checks(specs: Path, case: str, text: str) -> None:
    """Replace the case's expected file by an assert file."""
    folder = specs / CASES
    (folder / f"{case}.expected.json").unlink(missing_ok=True)
    (folder / f"{case}.error.txt").unlink(missing_ok=True)
    (folder / f"{case}.assert.yaml").write_text(text, encoding="utf-8")


def result_of(specs: Path, case: str) -> tuple[bool, str]:
    (result,) = run_golden(specs, cases=[case])
    return result.passed, result.detail


def test_checks_that_hold_pass_without_an_expected_file(specs: Path) -> None:
    only_checks(
        specs,
        "processing-step",
        "output:\n"
        "  - {path: MaHoSo, equals: 000.21.32.H56-261123-00000}\n"
        '  - {path: TrangThai, equals: "4"}\n'
        "  - {path: NguoiXuLy, contains: Hạnh}\n"
        "  - {path: ThoiDiemXuLy, matches: '^\\d{14}$'}\n"
        "  - {path: KhongCo, exists: false}\n"
        "  - {contains: {MaHoSo: 000.21.32.H56-261123-00000, ChucDanh: Chuyên viên}}\n",
    )
    assert result_of(specs, "processing-step") == (True, "")


def test_each_check_that_fails_names_its_line_the_path_and_both_values(specs: Path) -> None:
    only_checks(
        specs,
        "processing-step",
        "output:\n"
        "  - {path: TrangThai, equals: 4}\n"
        "  - {path: MaHoSo, equals: 000.21.32.H56-261123-00000}\n"
        "  - {path: NguoiXuLy, contains: Lan}\n"
        "  - {path: ChucDanh, exists: false}\n"
        "  - {path: NgayBatDau, matches: '^2027'}\n",
    )
    passed, detail = result_of(specs, "processing-step")
    assert not passed
    assert detail.splitlines() == [
        'processing-step.assert.yaml:2 output[0]: TrangThai should equal 4, but is "4"',
        'processing-step.assert.yaml:4 output[2]: NguoiXuLy should contain "Lan", but is "Trần Thị Hạnh"',
        'processing-step.assert.yaml:5 output[3]: ChucDanh should be missing or null, but is "Chuyên viên"',
        'processing-step.assert.yaml:6 output[4]: NgayBatDau should match "^2027", but is "20261123090000"',
    ]


def test_contains_looks_into_lists_of_objects(tmp_path: Path) -> None:
    (tmp_path / "docs.yaml").write_text(
        "fields:\n  Tep:\n    each: documents\n    fields: {Ten: name, Loai: kind}\n", encoding="utf-8"
    )
    folder = tmp_path / "golden" / "docs"
    folder.mkdir(parents=True)
    (folder / "two.input.json").write_text(
        '{"documents": [{"name": "Đơn", "kind": 1}, {"name": "CCCD", "kind": 2}]}', encoding="utf-8"
    )
    (folder / "two.assert.yaml").write_text(
        "output:\n"
        "  - {path: Tep, contains: {Ten: CCCD}}\n"
        "  - {path: 'Tep[*].Ten', contains: Đơn}\n"
        "  - {path: 'Tep[*].Loai', equals: [1, 2]}\n"
        "  - {path: Tep, contains: {Ten: Giấy phép}}\n",
        encoding="utf-8",
    )
    (result,) = run_golden(tmp_path)
    assert result.detail == (
        'two.assert.yaml:5 output[3]: Tep should contain {"Ten":"Giấy phép"}, but is'
        ' [{"Ten":"Đơn","Loai":1},{"Ten":"CCCD","Loai":2}]'
    )


def test_an_expected_error_can_be_part_of_its_text(specs: Path) -> None:
    only_checks(
        specs, "error-no-officer", "error: 'NguoiXuLy (from dossier.step.officer): required but missing'\n"
    )
    assert result_of(specs, "error-no-officer") == (True, "")
    only_checks(specs, "error-no-officer", "error: unknown code\n")
    passed, detail = result_of(specs, "error-no-officer")
    assert not passed
    assert detail.startswith(
        'error-no-officer.assert.yaml:1 error: the error should contain "unknown code", but is'
    )


def test_checks_and_the_whole_expected_file_both_apply(specs: Path) -> None:
    folder = specs / CASES
    (folder / "processing-step.assert.yaml").write_text(
        "output:\n  - {path: TrangThai, equals: '9'}\n", encoding="utf-8"
    )
    passed, detail = result_of(specs, "processing-step")
    assert not passed
    assert detail == 'processing-step.assert.yaml:2 output[0]: TrangThai should equal "9", but is "4"'


def test_a_case_with_checks_on_output_fails_when_the_record_is_refused(specs: Path) -> None:
    only_checks(specs, "error-no-officer", "output:\n  - {path: MaHoSo, exists: true}\n")
    passed, detail = result_of(specs, "error-no-officer")
    assert not passed
    assert detail.startswith("the mapping refuses the record: NguoiXuLy (from dossier.step.officer)")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "output:\n  - {path: a, equals: 1, exists: true}\n",
            "processing-step.assert.yaml:2 output[0]: give exactly one test",
        ),
        ("output:\n  - {path: a, equal: 1}\n", "processing-step.assert.yaml:2 output[0].equal: unknown key"),
        ("output: []\nerror: x\n", "processing-step.assert.yaml:1 output: List should have at least 1 item"),
        ("{}\n", "give either output (checks on what the spec produces) or error"),
        (
            "output:\n  - {path: 'a..b', exists: true}\n",
            "processing-step.assert.yaml:2 output[0]: not a path: 'a..b'",
        ),
        (
            "output:\n  - {path: a, matches: '('}\n",
            "processing-step.assert.yaml:2 output[0]: missing ), unterminated subpattern",
        ),
        ("output:\n  - {path: a, equals: [1}\n", "processing-step.assert.yaml:2 invalid YAML: column 25"),
    ],
)
def test_a_wrong_assert_file_fails_its_case_naming_the_line(specs: Path, text: str, problem: str) -> None:
    only_checks(specs, "processing-step", text)
    passed, detail = result_of(specs, "processing-step")
    assert not passed
    assert problem in detail


def test_update_leaves_a_case_checked_by_an_assert_file_without_an_expected_file(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    only_checks(specs, "processing-step", "output:\n  - {path: TrangThai, equals: '4'}\n")
    assert main(["mapping", "test", str(specs), "--update"]) == 0
    assert "processing-step" not in capsys.readouterr().out.replace(
        "ok       portal_progress / processing-step", ""
    )
    assert not (specs / CASES / "processing-step.expected.json").exists()


def test_a_failing_check_stops_the_update_of_its_case(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An assert file guards --update: the whole expected file is not rewritten to a wrong output."""
    folder = specs / CASES
    (folder / "processing-step.assert.yaml").write_text(
        "output:\n  - {path: ChucDanh, equals: Chuyên viên}\n", encoding="utf-8"
    )
    spec = specs / "portal_progress.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace(
            'ChucDanh: {from: dossier.step.title, default: ""}', "ChucDanh: {const: x}"
        )
    )
    before = (folder / "processing-step.expected.json").read_bytes()

    assert main(["mapping", "test", str(specs), "--update"]) == 1

    out = capsys.readouterr().out
    assert "FAIL     portal_progress / processing-step" in out
    assert 'ChucDanh should equal "Chuyên viên", but is "x"' in out
    assert (folder / "processing-step.expected.json").read_bytes() == before


def test_accepting_an_error_does_not_rewrite_checks_on_output(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    only_checks(specs, "error-no-officer", "output:\n  - {path: MaHoSo, exists: true}\n")
    assert main(["mapping", "test", str(specs), "--update", "--accept-errors"]) == 1
    out = capsys.readouterr().out
    assert "error-no-officer.assert.yaml expects output: edit it by hand" in out
    assert not (specs / CASES / "error-no-officer.error.txt").exists()


def test_update_removes_stale_written_files_but_never_an_assert_file(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = specs / CASES
    (folder / "gone.assert.yaml").write_text("error: x\n", encoding="utf-8")
    (folder / "gone.error.txt").write_text("x\n", encoding="utf-8")

    assert main(["mapping", "test", str(specs), "--update"]) == 1

    out = capsys.readouterr().out
    assert f"removed  {folder / 'gone.error.txt'}" in out
    assert f"stale    {folder / 'gone.assert.yaml'}" in out
    assert "remove gone.assert.yaml by hand" in out
    assert (folder / "gone.assert.yaml").exists()


def test_the_readme_example_assert_file_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    guide = readme.split("**Golden tests.**", 1)[1]
    example = guide.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "received.assert.yaml"
    path.write_text(example, encoding="utf-8")
    checks = load_assert_file(path)
    assert checks.expects_output
    assert len(checks.expectations.output or []) == 5
