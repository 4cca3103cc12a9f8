"""``lienthong mapping``: run, test and inspect mapping specs without writing Python.

Exit codes: 0 all went well; 1 the mapping refused the record (``run``) or a case failed (``test``);
2 nothing could be run: a wrong argument, a spec that does not load (``run``), input that is not JSON, no
golden case selected, or an update that cannot write its files (a read-only checkout).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from lienthong.errors import ConfigError, MappingError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from lienthong.mappings.golden import CaseResult

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STDIN = "-"


def add_commands(sub: Any) -> None:
    mapping = sub.add_parser("mapping", help="run, test and inspect mapping specs")
    commands = mapping.add_subparsers(title="mapping commands", metavar="COMMAND")

    run = commands.add_parser(
        "run", help="map one input record and print the output; exit 1 if the mapping refuses it"
    )
    run.add_argument("spec", help="a spec file, or bundled:NAME")
    run.add_argument("input", help="the input record, a JSON file, or - to read it from stdin")
    run.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a param (repeatable)"
    )
    run.set_defaults(handler=_run)

    _add_test(commands)

    schema = commands.add_parser("schema", help="print the spec format's JSON Schema (for editor completion)")
    schema.set_defaults(handler=_schema)

    functions = commands.add_parser("functions", help="list the functions specs can apply")
    functions.add_argument(
        "--markdown",
        action="store_true",
        help="print the reference page instead (docs/mapping-functions.md is this output)",
    )
    functions.set_defaults(handler=_functions)


def _add_test(commands: Any) -> None:
    test = commands.add_parser(
        "test",
        help="run golden tests: of every spec in a directory, of one spec, or one case",
        description="Run golden tests. Exit 0 when every case passes, 1 when one fails (or an update is"
        " refused, or files are stale), 2 when nothing could be run (or an update cannot write its files).",
    )
    test.add_argument(
        "target",
        nargs="?",
        help="a directory of specs with golden/ beside them, one spec file, bundled:NAME, or one case's"
        " NAME.input.json (default: every bundled spec)",
    )
    test.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only cases whose name matches this shell pattern, e.g. 'error-*' (repeatable)",
    )
    test.add_argument(
        "--update",
        action="store_true",
        help="rewrite expected and error files from the current output; never assert files",
    )
    test.add_argument(
        "--accept-errors",
        action="store_true",
        help="with --update: a case that expected output (or a new case) may now expect an error",
    )
    test.add_argument(
        "--accept-outputs",
        action="store_true",
        help="with --update: a case that expected an error may now expect output",
    )
    test.add_argument("--json", action="store_true", help="print the results as one JSON object")
    test.add_argument(
        "--junit", type=Path, metavar="FILE", help="also write the results as JUnit XML to FILE (for CI)"
    )
    test.set_defaults(handler=_test)


def _run(args: argparse.Namespace) -> int:
    from lienthong.mappings import FunctionRegistry, SpecLoader  # noqa: PLC0415

    try:
        mapping = SpecLoader(FunctionRegistry.with_plugins()).load(args.spec)
        record, record_id = _read_record(args.input)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    malformed = [p for p in args.param if "=" not in p]
    if malformed:
        print(f"--param {malformed[0]}: give NAME=VALUE", file=sys.stderr)
        return EXIT_USAGE
    params = dict(p.split("=", 1) for p in args.param)
    missing = mapping.missing_params(params)
    if missing:
        print(f"{mapping.name} needs params: {', '.join(missing)} (give --param NAME=VALUE)", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = mapping(record, params=params, record_id=record_id)
    except MappingError as exc:
        print(f"mapping failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(mapping.render(result).decode())
    return EXIT_OK


def _read_record(source: str) -> tuple[Any, str]:
    name = "stdin" if source == STDIN else source
    try:
        data = sys.stdin.buffer.read() if source == STDIN else Path(source).read_bytes()
        return orjson.loads(data), name
    except OSError as exc:
        raise ConfigError.single(name, f"cannot read the input: {exc.strerror or exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise ConfigError.single(name, f"cannot read the input: {exc}") from exc


@dataclass(frozen=True)
class _Selection:
    directory: Path
    spec: str | None = None
    cases: tuple[str, ...] = ()


class _UsageError(Exception):
    pass


def _test(args: argparse.Namespace) -> int:
    from lienthong.mappings import FunctionRegistry, SpecLoader  # noqa: PLC0415
    from lienthong.mappings.golden import Update, UpdateError, run_golden  # noqa: PLC0415

    if (args.accept_errors or args.accept_outputs) and not args.update:
        print("--accept-errors and --accept-outputs go with --update", file=sys.stderr)
        return EXIT_USAGE
    try:
        selection = _select(args.target, args.case)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    update = Update(args.accept_errors, args.accept_outputs) if args.update else None
    try:
        results = run_golden(
            selection.directory,
            loader=SpecLoader(FunctionRegistry.with_plugins()),
            update=update,
            spec=selection.spec,
            cases=selection.cases,
        )
    except UpdateError as exc:
        if exc.results:
            _report(exc.results, args)
        print(f"{exc}; the update stopped there", file=sys.stderr)
        return EXIT_USAGE
    if not results:
        print(f"no golden cases {_where(selection)}", file=sys.stderr)
        return EXIT_USAGE
    _report(results, args)
    if args.junit is not None and not _write_junit(results, args.junit):
        return EXIT_USAGE
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAILED


def _write_junit(results: Sequence[CaseResult], path: Path) -> bool:
    from lienthong.mappings.golden_report import junit_xml  # noqa: PLC0415

    try:
        path.write_bytes(junit_xml(results))
    except OSError as exc:
        print(f"{path}: cannot write the JUnit report: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def _report(results: Sequence[CaseResult], args: argparse.Namespace) -> None:
    from lienthong.mappings.golden_report import as_json, text_lines  # noqa: PLC0415

    if args.json:
        print(json.dumps(as_json(results), indent=2, ensure_ascii=False))
    else:
        for line in text_lines(results, update=args.update):
            print(line)


def _select(target: str | None, cases: list[str]) -> _Selection:
    """What ``mapping test TARGET --case P`` runs: a directory, one spec, or one case."""
    from lienthong.mappings import BUNDLED_PREFIX, bundled_dir  # noqa: PLC0415

    if target is None:
        return _Selection(bundled_dir(), None, tuple(cases))
    if target.startswith(BUNDLED_PREFIX):
        return _Selection(bundled_dir(), target.removeprefix(BUNDLED_PREFIX), tuple(cases))
    path = Path(target)
    if path.is_dir():
        return _Selection(path, None, tuple(cases))
    if path.is_file() and path.name.endswith(".input.json"):
        folder = path.parent
        if folder.parent.name != "golden":
            raise _UsageError(f"{target}: a case's input lives in DIR/golden/SPEC/")
        return _Selection(folder.parent.parent, folder.name, (path.name.removesuffix(".input.json"),))
    if path.is_file() and path.suffix == ".yaml":
        return _Selection(path.parent, path.stem, tuple(cases))
    raise _UsageError(
        f"{target}: no such directory or spec file (give a directory, a spec's .yaml, bundled:NAME or a"
        " case's .input.json)"
    )


def _where(selection: _Selection) -> str:
    folder = selection.directory / "golden" / (selection.spec or "")
    cases = f" matching {', '.join(selection.cases)}" if selection.cases else ""
    return f"under {folder}{'/' if not selection.spec else ''}{cases}"


def _schema(args: argparse.Namespace) -> int:
    from lienthong.jsonschemas import render, spec_schema  # noqa: PLC0415
    from lienthong.mappings import FunctionRegistry  # noqa: PLC0415

    sys.stdout.write(render(spec_schema(FunctionRegistry.with_plugins())))
    return EXIT_OK


def _functions(args: argparse.Namespace) -> int:
    from lienthong.mappings import FunctionRegistry  # noqa: PLC0415
    from lienthong.mappings.reference import functions_markdown, signature  # noqa: PLC0415

    registry = FunctionRegistry.with_plugins()
    if args.markdown:
        sys.stdout.write(functions_markdown(registry))
        return EXIT_OK
    for function in registry:
        print(f"{signature(function)}\n    {function.doc}")
    return EXIT_OK
