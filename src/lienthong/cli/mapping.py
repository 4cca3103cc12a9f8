"""``lienthong mapping``: run, test and inspect mapping specs without writing Python."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import orjson

from lienthong.errors import ConfigError, MappingError

EXIT_OK, EXIT_FAILED = 0, 1


def add_commands(sub: Any) -> None:
    mapping = sub.add_parser("mapping", help="run, test and inspect mapping specs")
    commands = mapping.add_subparsers(title="mapping commands", metavar="COMMAND")

    run = commands.add_parser("run", help="map one input file and print the output")
    run.add_argument("spec", help="a spec file, or bundled:NAME")
    run.add_argument("input", type=Path, help="the input record, a JSON file")
    run.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a param (repeatable)"
    )
    run.set_defaults(handler=_run)

    test = commands.add_parser("test", help="run the golden tests of every spec in a directory")
    test.add_argument(
        "directory", type=Path, nargs="?", help="specs with golden/ beside them (default: bundled)"
    )
    test.add_argument("--update", action="store_true", help="rewrite expected files from the current output")
    test.set_defaults(handler=_test)

    schema = commands.add_parser("schema", help="print the spec format's JSON Schema (for editor completion)")
    schema.set_defaults(handler=_schema)

    functions = commands.add_parser("functions", help="list the functions specs can apply")
    functions.set_defaults(handler=_functions)


def _run(args: argparse.Namespace) -> int:
    from lienthong.mappings import FunctionRegistry, SpecLoader  # noqa: PLC0415

    mapping = SpecLoader(FunctionRegistry.with_plugins()).load(args.spec)
    try:
        record = orjson.loads(args.input.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError.single(str(args.input), f"cannot read the input: {exc}") from exc
    params = dict(p.split("=", 1) for p in args.param if "=" in p)
    missing = mapping.missing_params(params)
    if missing:
        print(f"{mapping.name} needs params: {', '.join(missing)} (give --param NAME=VALUE)", file=sys.stderr)
        return EXIT_FAILED
    try:
        result = mapping(record, params=params, record_id=str(args.input))
    except MappingError as exc:
        print(f"mapping failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(mapping.render(result).decode())
    return EXIT_OK


def _test(args: argparse.Namespace) -> int:
    from lienthong.mappings import FunctionRegistry, SpecLoader, bundled_dir  # noqa: PLC0415
    from lienthong.mappings.golden import run_golden  # noqa: PLC0415

    directory = args.directory or bundled_dir()
    results = run_golden(directory, loader=SpecLoader(FunctionRegistry.with_plugins()), update=args.update)
    for result in results:
        mark = "updated" if result.updated else ("ok" if result.passed else "FAIL")
        print(f"{mark:8} {result.spec} / {result.case}")
        if result.detail and not result.passed:
            print("    " + result.detail.replace("\n", "\n    "))
    failed = sum(not r.passed for r in results)
    print(f"{len(results)} cases, {failed} failed" + (" (expected files rewritten)" if args.update else ""))
    if not results:
        print(f"no golden cases under {directory}/golden/", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from lienthong.mappings import Spec  # noqa: PLC0415

    schema = Spec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "lienthong mapping spec"
    print(json.dumps(schema, indent=2, ensure_ascii=False))
    return EXIT_OK


def _functions(args: argparse.Namespace) -> int:
    from lienthong.mappings import FunctionRegistry  # noqa: PLC0415

    for function in FunctionRegistry.with_plugins():
        fields = function.args.model_fields
        arguments = ", ".join(
            name if info.is_required() else f"{name}={info.default!r}" for name, info in fields.items()
        )
        print(f"{function.name}({arguments})\n    {function.doc}")
    return EXIT_OK
