"""Golden tests for specs: inputs next to the outputs they must produce.

Layout, for a spec ``DIR/portal_dossier.yaml``::

    DIR/golden/portal_dossier/received.input.json       the record
    DIR/golden/portal_dossier/received.expected.json    what the spec must produce (.expected.xml for XML)
    DIR/golden/portal_dossier/bad-status.input.json     a record the spec must refuse...
    DIR/golden/portal_dossier/bad-status.error.txt      ...with exactly this error
    DIR/golden/portal_dossier/params.json               params for every case (optional)

``update=True`` rewrites the expected files from what the spec produces now (review the diff!).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from lienthong.errors import ConfigError, MappingError
from lienthong.mappings.loader import CompiledMapping, SpecLoader


@dataclass(frozen=True)
class CaseResult:
    spec: str
    case: str
    passed: bool
    detail: str = ""
    updated: bool = False


def spec_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.is_file())


def run_golden(
    directory: Path, *, loader: SpecLoader | None = None, update: bool = False
) -> list[CaseResult]:
    """Run every case of every spec in ``directory`` that has a golden folder."""
    loader = loader or SpecLoader()
    results: list[CaseResult] = []
    for spec_path in spec_files(directory):
        cases_dir = directory / "golden" / spec_path.stem
        if not cases_dir.is_dir():
            continue
        try:
            mapping = loader.load(spec_path)
        except ConfigError as exc:
            results.append(CaseResult(spec_path.stem, "(load)", passed=False, detail=str(exc)))
            continue
        params = _read_json(cases_dir / "params.json") if (cases_dir / "params.json").exists() else {}
        results.extend(
            _run_case(mapping, spec_path.stem, input_path, params, update=update)
            for input_path in sorted(cases_dir.glob("*.input.json"))
        )
    return results


def _run_case(
    mapping: CompiledMapping, spec: str, input_path: Path, params: dict[str, Any], *, update: bool
) -> CaseResult:
    case = input_path.name.removesuffix(".input.json")
    record = _read_json(input_path)
    record_id = record.get("event_id", case) if isinstance(record, dict) else case
    error_path = input_path.with_name(f"{case}.error.txt")
    expected_path = input_path.with_name(f"{case}.expected.{'xml' if mapping.output == 'xml' else 'json'}")
    try:
        actual = mapping.render(mapping(record, params=params, record_id=str(record_id))).decode()
    except MappingError as exc:
        actual_error = str(exc)
        if error_path.exists() and not update:
            expected = error_path.read_text(encoding="utf-8").strip()
            return CaseResult(
                spec, case, actual_error == expected, _diff(expected, actual_error, error_path.name)
            )
        if update:
            error_path.write_text(actual_error + "\n", encoding="utf-8")
            return CaseResult(spec, case, passed=True, updated=True)
        return CaseResult(spec, case, passed=False, detail=f"failed: {actual_error}")
    if update:
        expected_path.write_text(actual, encoding="utf-8")
        error_path.unlink(missing_ok=True)
        return CaseResult(spec, case, passed=True, updated=True)
    if not expected_path.exists():
        what = (
            f"expected an error ({error_path.name}) but the mapping succeeded"
            if error_path.exists()
            else (f"no {expected_path.name}; run with --update to write it")
        )
        return CaseResult(spec, case, passed=False, detail=what)
    expected = expected_path.read_text(encoding="utf-8")
    return CaseResult(spec, case, actual == expected, _diff(expected, actual, expected_path.name))


def _diff(expected: str, actual: str, name: str) -> str:
    if expected == actual:
        return ""
    lines = difflib.unified_diff(
        expected.splitlines(),
        actual.splitlines(),
        fromfile=f"{name} (expected)",
        tofile="actual",
        lineterm="",
    )
    return "\n".join(lines)


def _read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ConfigError.single(str(path), f"not valid JSON: {exc}") from exc
