"""`lienthong mapping` in the day-to-day loop: one spec or one case, JSON and JUnit for CI, stdin, exit
codes, YAML syntax errors an integrator can act on, and the functions reference page."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from lxml import etree

from lienthong.cli import main
from lienthong.errors import ConfigError
from lienthong.mappings import SpecLoader, bundled_dir

GOLDEN = bundled_dir() / "golden"
ROOT = Path(__file__).parent.parent


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    for name in ("portal_progress", "emc_tracking"):
        shutil.copy(bundled_dir() / f"{name}.yaml", tmp_path)
        shutil.copytree(GOLDEN / name, tmp_path / "golden" / name)
    shutil.copy(bundled_dir() / "reference.yaml", tmp_path)
    return tmp_path


# -- YAML syntax errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "hint"),
    [
        ("fields:\n\tMaHoSo: dossier.code\n", "broken.yaml:2 invalid YAML: column 1", "a tab"),
        (
            "fields:\n  X: {from: a, apply: [trim}\n",
            "broken.yaml:2 invalid YAML: column 28",
            "the list opened with [ at line 2, column 23 is not closed",
        ),
        (
            "description: Sync: portal\nfields: {X: a}\n",
            "broken.yaml:1 invalid YAML: column 18",
            "put the value in quotes",
        ),
        (
            'fields:\n  X: {from: a, when: {path: a, matches: "\\d+"}}\n',
            "broken.yaml:2 invalid YAML: column 42",
            "use single quotes",
        ),
        (
            "fields:\n  X: 'a\n",
            "broken.yaml:2 invalid YAML: column 6",
            "the quoted text that opens here is never closed",
        ),
        (
            "fields:\n  X:\n    from: a\n   apply: trim\n",
            "broken.yaml:4 invalid YAML: column 4",
            "indented differently",
        ),
        ("fields:\n  X: a\n  Y\n", "broken.yaml:3 invalid YAML: column 3", "no colon"),
        ("fields:\n  X: @a\n", "broken.yaml:2 invalid YAML: column 6", "cannot start with @"),
    ],
)
def test_a_yaml_syntax_error_names_line_and_column_with_a_plain_hint(
    tmp_path: Path, text: str, where: str, hint: str
) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        SpecLoader().load(spec)

    message = str(caught.value)
    assert message.startswith(where), message
    assert hint in message
    for internal in ("<block end>", "scanning", "token", "<stream end>", "simple key", "node content"):
        assert internal not in message


def test_mapping_run_with_a_broken_spec_exits_2_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("fields:\n\tMaHoSo: dossier.code\n", encoding="utf-8")
    record = tmp_path / "record.json"
    record.write_text("{}")

    assert main(["mapping", "run", str(spec), str(record)]) == 2
    assert "broken.yaml:2 invalid YAML: column 1: a tab" in capsys.readouterr().err


# -- choosing what to run ---------------------------------------------------------------------------------


def test_one_spec_runs_only_its_cases(specs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mapping", "test", str(specs / "portal_progress.yaml")]) == 0
    out = capsys.readouterr().out
    assert "ok       portal_progress / processing-step" in out
    assert "emc_tracking" not in out
    assert "3 cases, 0 failed" in out


def test_one_case_runs_from_its_input_file(specs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = specs / "golden" / "emc_tracking" / "postal-processing.input.json"
    assert main(["mapping", "test", str(case)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["ok       emc_tracking / postal-processing", "1 cases, 0 failed"]


def test_case_patterns_pick_cases_across_specs(specs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mapping", "test", str(specs), "--case", "error-*"]) == 0
    out = capsys.readouterr().out
    assert "ok       emc_tracking / error-level-2" in out
    assert "ok       portal_progress / error-no-officer" in out
    assert "2 cases, 0 failed" in out


def test_a_bundled_spec_is_named_as_in_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mapping", "test", "bundled:portal_progress"]) == 0
    assert "3 cases, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nowhere"], "nowhere: no such directory or spec file"),
        (["{specs}", "--case", "nothing-*"], "no golden cases under {specs}/golden/ matching nothing-*"),
        (["bundled:portal_progres"], "no golden cases under"),
        (["{specs}", "--accept-errors"], "--accept-errors and --accept-outputs go with --update"),
    ],
)
def test_nothing_to_run_exits_2(
    specs: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    args = [a.format(specs=specs) for a in argv]
    assert main(["mapping", "test", *args]) == 2
    assert message.format(specs=specs) in capsys.readouterr().err


# -- output for CI --------------------------------------------------------------------------------------


def break_a_case(specs: Path) -> None:
    expected = specs / "golden" / "portal_progress" / "processing-step.expected.json"
    expected.write_text(expected.read_text(encoding="utf-8").replace('"TrangThai": "4"', '"TrangThai": "5"'))


def test_json_output_lists_every_case_with_its_outcome(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    break_a_case(specs)

    assert main(["mapping", "test", str(specs), "--json"]) == 1

    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["summary"] == {
        "cases": 8,
        "failed": 1,
        "refused": 0,
        "written": 0,
        "removed": 0,
        "stale": 0,
    }
    outcomes = {(c["spec"], c["case"]): c["outcome"] for c in report["cases"]}
    assert outcomes[("portal_progress", "processing-step")] == "failed"
    assert outcomes[("emc_tracking", "error-level-2")] == "passed"
    (failed,) = [c for c in report["cases"] if c["outcome"] == "failed"]
    assert '-  "TrangThai": "5",' in failed["detail"]


def test_json_output_of_an_update_names_each_file(specs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    break_a_case(specs)

    assert main(["mapping", "test", str(specs / "portal_progress.yaml"), "--update", "--json"]) == 0

    report = json.loads(capsys.readouterr().out)
    (updated,) = [c for c in report["cases"] if c["outcome"] == "updated"]
    path = specs / "golden" / "portal_progress" / "processing-step.expected.json"
    assert updated["files"] == [{"path": str(path), "change": "changed"}]


def test_junit_xml_has_a_suite_per_spec_and_a_failure_per_failed_case(
    specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    break_a_case(specs)
    report = tmp_path / "junit.xml"

    assert main(["mapping", "test", str(specs), "--junit", str(report)]) == 1

    assert "FAIL     portal_progress / processing-step" in capsys.readouterr().out  # the text still printed
    root = etree.fromstring(report.read_bytes(), etree.XMLParser(resolve_entities=False))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("8", "1")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"emc_tracking", "portal_progress"}
    assert suites["portal_progress"].get("failures") == "1"
    (failure,) = root.iter("failure")
    case = failure.getparent()
    assert case is not None
    assert (case.get("classname"), case.get("name")) == ("golden.portal_progress", "processing-step")
    assert '+  "TrangThai": "4",' in (failure.text or "")
    assert all(float(c.get("time") or "x") >= 0 for c in root.iter("testcase"))


# -- mapping run ------------------------------------------------------------------------------------------


def test_mapping_run_reads_the_record_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    case = GOLDEN / "emc_tracking" / "postal-processing.input.json"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(case.read_bytes()), encoding="utf-8"))

    code = main(
        [
            "mapping",
            "run",
            "bundled:emc_tracking",
            "-",
            "--param",
            "site_id=SITE-H56-MC",
            "--param",
            "province_code=H56",
        ]
    )

    assert code == 0
    expected = (GOLDEN / "emc_tracking" / "postal-processing.expected.json").read_text(encoding="utf-8")
    assert json.loads(capsys.readouterr().out) == json.loads(expected)


def test_mapping_run_names_stdin_when_it_is_not_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"{oops"), encoding="utf-8"))
    assert main(["mapping", "run", "bundled:emc_tracking", "-"]) == 2
    assert "stdin cannot read the input: unexpected character" in capsys.readouterr().err


def test_mapping_run_exits_1_only_when_the_mapping_refuses_the_record(
    capsys: pytest.CaptureFixture[str],
) -> None:
    case = GOLDEN / "emc_tracking" / "error-level-2.input.json"
    params = ["--param", "site_id=S", "--param", "province_code=H56"]
    assert main(["mapping", "run", "bundled:emc_tracking", str(case), *params]) == 1
    assert main(["mapping", "run", "bundled:emc_trackin", str(case), *params]) == 2
    assert "cannot read spec emc_trackin.yaml" in capsys.readouterr().err


# -- the functions reference ------------------------------------------------------------------------------


def test_the_functions_page_is_what_the_registry_makes_of_it(capsys: pytest.CaptureFixture[str]) -> None:
    from lienthong.mappings.reference import REGENERATE, functions_markdown  # noqa: PLC0415

    page = (ROOT / "docs" / "mapping-functions.md").read_text(encoding="utf-8")
    assert page == functions_markdown(), f"docs/mapping-functions.md is out of date: run {REGENERATE}"
    assert main(["mapping", "functions", "--markdown"]) == 0
    assert capsys.readouterr().out == page


def test_every_function_has_an_example_and_every_argument_a_description() -> None:
    from lienthong.mappings import FunctionRegistry  # noqa: PLC0415
    from lienthong.mappings.reference import EXAMPLES  # noqa: PLC0415

    for function in FunctionRegistry.builtin():
        assert EXAMPLES.get(function.name), f"{function.name} has no example on the reference page"
        for name, info in function.args.model_fields.items():
            assert info.description, f"{function.name}'s argument {name} has no description"


def test_an_example_that_no_longer_holds_stops_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    from lienthong.mappings import reference  # noqa: PLC0415

    wrong = reference.Example({"pad": 5}, "42", "0042")
    monkeypatch.setitem(reference.EXAMPLES, "pad", [wrong])
    with pytest.raises(ValueError, match=r"example apply: \{pad: 5\} on '42' gave '00042', not '0042'"):
        reference.functions_markdown()


def test_the_readme_shows_a_real_yaml_error(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = next(line for line in readme.splitlines() if line.startswith("my_spec.yaml:9 invalid YAML"))
    spec = tmp_path / "my_spec.yaml"
    spec.write_text(
        "description: x\n" + "# .\n" * 6 + "fields:\n  X: {from: a, apply: [trim}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        SpecLoader().load(spec)
    assert str(caught.value) == shown


def test_a_junit_report_that_cannot_be_written_exits_2(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mapping", "test", str(specs), "--junit", str(specs / "no" / "such" / "dir.xml")]) == 2
    assert "cannot write the JUnit report: No such file or directory" in capsys.readouterr().err


def test_a_param_without_a_value_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    case = GOLDEN / "emc_tracking" / "postal-processing.input.json"
    assert main(["mapping", "run", "bundled:emc_tracking", str(case), "--param", "site_id"]) == 2
    assert "--param site_id: give NAME=VALUE" in capsys.readouterr().err
