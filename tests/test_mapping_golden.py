"""Golden tests of the bundled specs, the golden runner itself, and the `lienthong mapping` commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLE_ENV
from lienthong.cli import main
from lienthong.mappings import SpecLoader, bundled_dir
from lienthong.mappings.golden import run_golden, spec_files

EXAMPLE = Path(__file__).parent.parent / "examples" / "lienthong.yaml"
GOLDEN = bundled_dir() / "golden"


def test_every_bundled_spec_passes_its_golden_tests() -> None:
    results = run_golden(bundled_dir())
    failures = [f"{r.spec}/{r.case}:\n{r.detail}" for r in results if not r.passed]
    assert not failures, "\n".join(failures)
    assert len(results) >= 20


def test_every_bundled_spec_with_fields_has_golden_cases_including_a_refused_record() -> None:
    loader = SpecLoader()
    for spec in spec_files(bundled_dir()):
        if not loader.load(spec).document["fields"]:
            continue  # a library of tables (reference.yaml)
        cases = GOLDEN / spec.stem
        assert list(cases.glob("*.input.json")), f"{spec.name} has no golden cases"
        if spec.stem != "address":
            assert list(cases.glob("*.error.txt")), f"{spec.name} has no case of a refused record"


@pytest.fixture
def golden_dir(tmp_path: Path) -> Path:
    shutil.copy(bundled_dir() / "portal_progress.yaml", tmp_path)
    shutil.copy(bundled_dir() / "reference.yaml", tmp_path)
    shutil.copytree(GOLDEN / "portal_progress", tmp_path / "golden" / "portal_progress")
    return tmp_path


def test_a_changed_output_fails_with_a_readable_diff_and_update_rewrites_it(golden_dir: Path) -> None:
    expected = golden_dir / "golden" / "portal_progress" / "processing-step.expected.json"
    expected.write_text(expected.read_text(encoding="utf-8").replace('"TrangThai": "4"', '"TrangThai": "5"'))
    (failed,) = [r for r in run_golden(golden_dir) if not r.passed]
    assert failed.case == "processing-step"
    assert '-  "TrangThai": "5",' in failed.detail
    assert '+  "TrangThai": "4",' in failed.detail
    updated = {r.case: r for r in run_golden(golden_dir, update=True)}
    assert all(r.passed for r in updated.values())
    assert [r.case for r in updated.values() if r.updated] == ["processing-step"]
    assert [(f.path, f.change) for f in updated["processing-step"].files] == [(expected, "changed")]
    assert all(r.passed for r in run_golden(golden_dir))
    assert '"TrangThai": "4"' in expected.read_text(encoding="utf-8")


def test_an_expected_error_must_match_exactly_and_a_case_without_expectations_fails(golden_dir: Path) -> None:
    error = golden_dir / "golden" / "portal_progress" / "error-no-officer.error.txt"
    error.write_text("something else\n")
    new_case = golden_dir / "golden" / "portal_progress" / "new.input.json"
    shutil.copy(golden_dir / "golden" / "portal_progress" / "processing-step.input.json", new_case)
    results = {r.case: r for r in run_golden(golden_dir)}
    assert not results["error-no-officer"].passed
    assert (
        "+NguoiXuLy (from dossier.step.officer): required but missing" in results["error-no-officer"].detail
    )
    assert not results["new"].passed
    assert (
        results["new"].detail
        == "no new.expected.json; run with --update to write it (or write new.assert.yaml)"
    )


def test_a_spec_that_does_not_load_is_reported_as_a_failure(golden_dir: Path) -> None:
    spec = golden_dir / "portal_progress.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace(
            "apply: [coalesce, format_date]", "apply: [coalesce, fromat_date]", 1
        )
    )
    (result,) = run_golden(golden_dir)
    assert result.case == "(load)"
    assert "unknown function 'fromat_date' (did you mean 'format_date'?)" in result.detail


def test_mapping_run_prints_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    case = GOLDEN / "emc_tracking" / "postal-processing.input.json"
    code = main(
        [
            "mapping",
            "run",
            "bundled:emc_tracking",
            str(case),
            "--param",
            "site_id=SITE-H56-MC",
            "--param",
            "province_code=H56",
        ]
    )
    assert code == 0
    expected = (GOLDEN / "emc_tracking" / "postal-processing.expected.json").read_text(encoding="utf-8")
    assert json.loads(capsys.readouterr().out) == json.loads(expected)


def test_mapping_run_names_missing_params_and_refused_records(capsys: pytest.CaptureFixture[str]) -> None:
    case = GOLDEN / "emc_tracking" / "error-level-2.input.json"
    assert main(["mapping", "run", "bundled:emc_tracking", str(case)]) == 2  # bad input: nothing mapped
    assert "emc_tracking needs params: site_id, province_code" in capsys.readouterr().err
    assert (
        main(
            [
                "mapping",
                "run",
                "bundled:emc_tracking",
                str(case),
                "--param",
                "site_id=S",
                "--param",
                "province_code=H56",
            ]
        )
        == 1
    )
    assert (
        "mapping failed: Level (from dossier.level): expected one of 0, 1, 3, 4, got 2"
        in capsys.readouterr().err
    )


def test_mapping_run_refuses_input_that_is_not_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["mapping", "run", "bundled:portal_dossier", str(bad)]) == 2
    assert f"{bad} cannot read the input: unexpected character" in capsys.readouterr().err


def test_mapping_test_reports_each_case_and_fails_when_one_fails(
    golden_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mapping", "test", str(golden_dir)]) == 0
    assert "3 cases, 0 failed" in capsys.readouterr().out
    (golden_dir / "golden" / "portal_progress" / "processing-step.expected.json").write_text("{}\n")
    assert main(["mapping", "test", str(golden_dir)]) == 1
    out = capsys.readouterr().out
    assert "FAIL     portal_progress / processing-step" in out
    assert main(["mapping", "test", str(golden_dir), "--update"]) == 0
    assert main(["mapping", "test", str(golden_dir)]) == 0


def test_mapping_schema_and_functions_describe_the_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mapping", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "lienthong mapping spec"
    assert {"fields", "tables", "personal_sources", "extends", "include"} <= set(schema["properties"])
    assert "from" in schema["$defs"]["FieldSpec"]["properties"]
    assert main(["mapping", "functions"]) == 0
    listing = capsys.readouterr().out
    assert "format_date(format='yyyyMMddHHmmss', tz='Asia/Ho_Chi_Minh', from_format='iso8601')" in listing
    assert "money_in_words(currency='đồng')" in listing


def test_check_names_a_broken_mapping_a_route_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    spec = tmp_path / "mappings" / "my_emc.yaml"
    spec.parent.mkdir()
    spec.write_text(
        "extends: bundled:emc_tracking\nfields:\n  Status: {from: dossier.status, table: portal_statsu}\n"
    )
    config = tmp_path / "lienthong.yaml"
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "{to: emc, operation: TrackingMCDT}",
        "{to: emc, operation: TrackingMCDT, mapping: mappings/my_emc.yaml}",
        1,
    )
    config.write_text(text)
    assert main(["check", str(config)]) == 1
    err = capsys.readouterr().err
    assert (
        "my_emc.yaml:3 fields.Status.table: unknown table 'portal_statsu' (did you mean 'portal_status'?)"
        in err
    )
    spec.write_text("extends: bundled:emc_tracking\nparams:\n  extra: {description: needed}\n")
    assert main(["check", str(config)]) == 1
    err = capsys.readouterr().err
    assert "routes[0].deliver[1].params: mapping my_emc needs params: extra" in err


def test_the_readme_example_spec_compiles_and_maps(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    guide = readme.split("## Writing a mapping", 1)[1]
    example = guide.split("```yaml\n", 1)[1].split("```", 1)[0]
    shutil.copy(bundled_dir() / "reference.yaml", tmp_path)
    (tmp_path / "example.yaml").write_text(example, encoding="utf-8")
    mapping = SpecLoader().load(tmp_path / "example.yaml")
    record = json.loads(
        (GOLDEN / "portal_dossier" / "received-online-with-fee.input.json").read_text(encoding="utf-8")
    )
    out = mapping(record, params={"site_id": "S1"})
    assert out["SiteId"] == "S1"
    assert out["HinhThuc"] == "2"
    assert out["ThanhToan"] == 1
    assert out["TaiLieuNop"][0]["STT"] == 1
    assert out["TaiLieuNop"][0]["MaHoSo"] == record["dossier"]["code"]
