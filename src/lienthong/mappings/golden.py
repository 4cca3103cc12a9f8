"""Golden tests for specs: inputs next to the outputs they must produce.

Layout, for a spec ``DIR/portal_dossier.yaml``::

    DIR/golden/portal_dossier/received.input.json       the record
    DIR/golden/portal_dossier/received.expected.json    what the spec must produce (.expected.xml for XML)
    DIR/golden/portal_dossier/received.assert.yaml      checks on parts of it (see golden_checks)
    DIR/golden/portal_dossier/bad-status.input.json     a record the spec must refuse...
    DIR/golden/portal_dossier/bad-status.error.txt      ...with exactly this error
    DIR/golden/portal_dossier/params.json               params for every case (optional)

A case expects output (an expected file, or an assert file with ``output:``) or an error (an error file,
or an assert file with ``error:``), never both. Expected and error files are written by ``--update``
(``Update``); assert files only by hand.

``Update`` rewrites the expected and error files from what the spec produces now, reporting each file it
writes (new or changed) or removes, and leaving the rest alone. It never changes the kind of a case on its
own: a case that expected output and now fails (a regression, most often) is refused unless
``accept_errors``, a case that expected an error and now gives output unless ``accept_outputs``. A new case
the spec refuses also needs ``accept_errors``. Files left from a case whose input is gone are stale: a run
fails on them and an update removes them.

A case file that cannot be read (a folder, not UTF-8, not JSON) fails its case, not the run. An update that
cannot write or remove a file (a read-only checkout) stops there with ``UpdateError``, which holds the
results of the cases done before it.
"""

from __future__ import annotations

import difflib
import fnmatch
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from lienthong.errors import ConfigError, LienthongError, MappingError
from lienthong.mappings.golden_checks import AssertFile, load_assert_file
from lienthong.mappings.loader import CompiledMapping, SpecLoader

Outcome = Literal["passed", "updated", "failed", "refused", "stale", "removed"]
Change = Literal["new", "changed", "removed", "stale"]
INPUT, EXPECTED_JSON, EXPECTED_XML, ERROR, ASSERT = (
    ".input.json",
    ".expected.json",
    ".expected.xml",
    ".error.txt",
    ".assert.yaml",
)
_SUFFIXES = (INPUT, EXPECTED_JSON, EXPECTED_XML, ERROR, ASSERT)


@dataclass(frozen=True)
class Update:
    """Rewrite expected and error files from the current output. ``accept_errors``: a case that expected
    output (or a new case) may now expect an error; ``accept_outputs``: one that expected an error may now
    expect output."""

    accept_errors: bool = False
    accept_outputs: bool = False


@dataclass(frozen=True)
class FileChange:
    path: Path
    change: Change


@dataclass(frozen=True)
class CaseResult:
    """One case: ``passed``, ``updated`` (files written or removed), ``failed``, ``refused`` (an update
    that would change the kind of the case), ``stale`` (files whose input is gone), or ``removed`` (stale
    files an update removed)."""

    spec: str
    case: str
    outcome: Outcome
    detail: str = ""
    files: tuple[FileChange, ...] = ()
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.outcome in ("passed", "updated", "removed")

    @property
    def updated(self) -> bool:
        return any(f.change != "stale" for f in self.files)


class UpdateError(LienthongError):
    """An update could not write or remove a file; ``results``: the cases done before it."""

    def __init__(self, path: Path, exc: OSError) -> None:
        self.path = path
        self.reason = exc.strerror or str(exc)
        self.results: list[CaseResult] = []
        super().__init__(f"{path}: cannot update: {self.reason}")


def spec_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.is_file())


def run_golden(
    directory: Path,
    *,
    loader: SpecLoader | None = None,
    update: Update | bool | None = None,
    spec: str | None = None,
    cases: Sequence[str] = (),
) -> list[CaseResult]:
    """Run every case of every spec in ``directory`` that has a golden folder.

    ``spec``: only the spec of that name (file name without .yaml); ``cases``: only cases whose name
    matches one of these shell patterns (``error-*``). ``update``: an ``Update`` (True: the default one;
    None or False: check only). Raises UpdateError when an update cannot write or remove a file.
    """
    loader = loader or SpecLoader()
    policy = Update() if update is True else (update or None)
    results: list[CaseResult] = []
    try:
        for spec_path in spec_files(directory):
            folder = directory / "golden" / spec_path.stem
            if not folder.is_dir() or (spec is not None and spec_path.stem != spec):
                continue
            names = [
                n for n in _case_names(folder) if not cases or any(fnmatch.fnmatchcase(n, p) for p in cases)
            ]
            for result in _run_spec(loader, spec_path, folder, names, policy):
                results.append(result)  # noqa: PERF402 - one at a time: an UpdateError keeps those before it
    except UpdateError as exc:
        exc.results = results
        raise
    return results


def _case_names(folder: Path) -> list[str]:
    """Every case named by a file in ``folder``, with or without its input."""
    names = {p.name.removesuffix(s) for p in folder.iterdir() for s in _SUFFIXES if p.name.endswith(s)}
    return sorted(names)


def _run_spec(
    loader: SpecLoader, spec_path: Path, folder: Path, names: list[str], update: Update | None
) -> Iterator[CaseResult]:
    """The results of the spec's cases, one at a time (so an UpdateError keeps those done before it)."""
    spec = spec_path.stem
    inputs = [n for n in names if (folder / f"{n}{INPUT}").exists()]
    for name in names:
        if name not in inputs:
            yield _stale(spec, folder, name, update)
    if not inputs:
        return
    try:
        mapping = loader.load(spec_path)
        params_path = folder / "params.json"
        params = _read_json(params_path) if params_path.exists() else {}
    except ConfigError as exc:
        yield CaseResult(spec, "(load)", "failed", str(exc))
        return
    for name in inputs:
        yield _run_case(mapping, _Case(spec, folder, name), params, update)


def _stale(spec: str, folder: Path, name: str, update: Update | None) -> CaseResult:
    """Files left from a case whose input is gone. An update removes the ones it wrote, never an assert
    file: that was written by hand."""
    files = [folder / f"{name}{s}" for s in (EXPECTED_JSON, EXPECTED_XML, ERROR, ASSERT)]
    present = [p for p in files if p.exists()]
    detail = f"no {name}{INPUT}: these files belong to a case that is gone"
    if update is None:
        return CaseResult(spec, name, "stale", detail, tuple(FileChange(p, "stale") for p in present))
    removed = [p for p in present if not p.name.endswith(ASSERT)]
    for path in removed:
        _unlink(path)
    kept = [p for p in present if p.name.endswith(ASSERT)]
    changes = (*(FileChange(p, "removed") for p in removed), *(FileChange(p, "stale") for p in kept))
    if kept:
        return CaseResult(spec, name, "stale", f"{detail}; remove {kept[0].name} by hand", changes)
    return CaseResult(spec, name, "removed", files=changes)


@dataclass(frozen=True)
class _Case:
    spec: str
    folder: Path
    name: str

    def file(self, suffix: str) -> Path:
        return self.folder / f"{self.name}{suffix}"


@dataclass(frozen=True)
class _Expectations:
    """What a case's files say it expects."""

    expected: Path  # the expected file for the spec's output format
    other: Path  # the expected file for the other format: stale if present
    error: Path
    checks: AssertFile | None

    @property
    def output_files(self) -> list[str]:
        """The files saying the case expects output."""
        checks = [self.checks.path.name] if self.checks is not None and self.checks.expects_output else []
        return [p.name for p in (self.expected, self.other) if p.exists()] + checks

    @property
    def error_files(self) -> list[str]:
        """The files saying the case expects an error."""
        checks = [self.checks.path.name] if self.checks is not None and not self.checks.expects_output else []
        return [self.error.name] * self.error.exists() + checks


def _run_case(
    mapping: CompiledMapping, case: _Case, params: dict[str, Any], update: Update | None
) -> CaseResult:
    started = time.perf_counter()
    xml = mapping.output == "xml"
    try:
        record = _read_json(case.file(INPUT))
        checks = load_assert_file(case.file(ASSERT)) if case.file(ASSERT).exists() else None
    except ConfigError as exc:
        return CaseResult(case.spec, case.name, "failed", str(exc))
    expect = _Expectations(
        expected=case.file(EXPECTED_XML if xml else EXPECTED_JSON),
        other=case.file(EXPECTED_JSON if xml else EXPECTED_XML),
        error=case.file(ERROR),
        checks=checks,
    )
    record_id = record.get("event_id", case.name) if isinstance(record, dict) else case.name
    try:
        result = mapping(record, params=params, record_id=str(record_id))
        answer = _Answer(result, mapping.render(result).decode(), None)
    except MappingError as exc:
        answer = _Answer(None, None, str(exc))
    try:
        judged = _judge(case, expect, answer) if update is None else _update(expect, answer, update)
    except ConfigError as exc:
        judged = "failed", str(exc), ()
    return CaseResult(
        case.spec, case.name, judged[0], judged[1], judged[2], round(time.perf_counter() - started, 6)
    )


_Judged = tuple[Outcome, str, tuple[FileChange, ...]]


@dataclass(frozen=True)
class _Answer:
    """What the spec made of the record: the output (document and text), or the error."""

    result: Any
    actual: str | None
    error: str | None


def _judge(case: _Case, expect: _Expectations, answer: _Answer) -> _Judged:
    error, actual = answer.error, answer.actual
    if expect.output_files and expect.error_files:
        both = " and ".join([*expect.output_files, *expect.error_files])
        return "failed", f"both {both}: a case expects output or an error, not both; delete the wrong one", ()
    if expect.other.exists():
        return (
            "failed",
            f"{expect.other.name} is stale: the spec's output is {_kind(expect.expected)} now",
            (),
        )
    if error is not None:
        if not expect.error_files:
            hint = "" if expect.output_files else " (if it should, run --update --accept-errors to expect it)"
            return "failed", f"the mapping refuses the record{hint}: {error}", ()
        return _verdict(_error_problems(expect, error))
    assert actual is not None
    if expect.error_files:
        return "failed", f"expected an error ({expect.error_files[0]}) but the mapping succeeded", ()
    if not expect.output_files:
        name = expect.expected.name
        return "failed", f"no {name}; run with --update to write it (or write {case.name}{ASSERT})", ()
    return _verdict(_output_problems(expect, answer.result, actual))


def _update(expect: _Expectations, answer: _Answer, update: Update) -> _Judged:
    refusal = _refusal(expect, answer, update)
    if refusal is not None:
        return "refused", refusal, ()
    if answer.error is not None:
        problems = _error_problems(expect, answer.error, exact=False)
        target, text = expect.error, answer.error + "\n"
    else:
        assert answer.actual is not None
        problems = _output_problems(expect, answer.result, answer.actual, whole=False)
        target, text = expect.expected, answer.actual
    checks = expect.checks
    if checks is not None and checks.expects_output != (answer.error is None):
        problems.append(f"{checks.path.name} expects {_wants(checks)}: edit it by hand")
    if problems:
        return _verdict(problems)
    # A case checked by an assert file alone stays so: no whole expected file is added to it.
    written = (target, text) if checks is None or target.exists() else None
    changes = _write(written) + _remove(expect, keep=target if written else None)
    return ("updated" if changes else "passed"), "", changes


def _refusal(expect: _Expectations, answer: _Answer, update: Update) -> str | None:
    """Why an update may not change this case on its own: it would change what kind of result it expects."""
    if answer.error is None:
        if expect.error_files and not update.accept_outputs:
            return (
                f"the mapping now accepts the record, which the case expects it to refuse"
                f" ({', '.join(expect.error_files)}); if it should be accepted now, run again with"
                " --accept-outputs"
            )
        return None
    if update.accept_errors:
        return None
    if expect.output_files:
        return (
            f"the mapping now refuses the record: {answer.error}\n"
            f"the case expects output ({', '.join(expect.output_files)}); if the record should be refused"
            " now, run again with --accept-errors"
        )
    if not expect.error_files:
        return (
            f"the mapping refuses this new case: {answer.error}\n"
            "if it should, run again with --accept-errors to expect this error"
        )
    return None


def _write(written: tuple[Path, str] | None) -> tuple[FileChange, ...]:
    if written is None:
        return ()
    path, text = written
    try:
        try:
            before = path.read_text(encoding="utf-8") if path.exists() else None
        except UnicodeDecodeError:
            before = ""  # not UTF-8: rewritten
        if before == text:
            return ()
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UpdateError(path, exc) from exc
    return (FileChange(path, "new" if before is None else "changed"),)


def _remove(expect: _Expectations, *, keep: Path | None) -> tuple[FileChange, ...]:
    """Every written file of the case but ``keep``: those of the other kind, or of the other output format."""
    removed = []
    for path in (expect.expected, expect.other, expect.error):
        if path != keep and path.exists():
            _unlink(path)
            removed.append(FileChange(path, "removed"))
    return tuple(removed)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError as exc:
        raise UpdateError(path, exc) from exc


def _error_problems(expect: _Expectations, error: str, *, exact: bool = True) -> list[str]:
    problems = []
    if exact and expect.error.exists():
        wanted = _read_text(expect.error).strip()
        if wanted != error:
            problems.append(_diff(wanted, error, expect.error.name))
    if expect.checks is not None:
        problems += expect.checks.check_error(error)
    return problems


def _output_problems(expect: _Expectations, result: Any, actual: str, *, whole: bool = True) -> list[str]:
    problems = []
    if whole and expect.expected.exists():
        wanted = _read_text(expect.expected)
        if wanted != actual:
            problems.append(_diff(wanted, actual, expect.expected.name))
    if expect.checks is not None and expect.checks.expects_output:
        problems += expect.checks.check_output(result)
    return problems


def _verdict(problems: list[str]) -> _Judged:
    return ("failed", "\n".join(problems), ()) if problems else ("passed", "", ())


def _wants(checks: AssertFile) -> str:
    return "output" if checks.expects_output else "an error"


def _kind(path: Path) -> str:
    return "xml" if path.name.endswith(EXPECTED_XML) else "json"


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


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError.single(str(path), f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError.single(
            str(path), f"cannot read: not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from exc


def _read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigError.single(str(path), f"cannot read: {exc.strerror or exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise ConfigError.single(str(path), f"not valid JSON: {exc}") from exc
