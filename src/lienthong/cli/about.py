"""``lienthong about [--json]``: what this build can do, in the Singer/Meltano ``--about`` habit.

Everything comes from the code's own registries, so the description cannot drift from the build: the
config's destination models (kind, operations and the bundled mapping each operation uses by default),
the event envelope's types, the bundled specs as the spec loader compiles them (name and content hash),
the mapping function registry with its argument models (plugins included), and the scheduled jobs.

An installed plugin that does not load, or that would replace a function, is left out of the description
and named under ``plugin_problems`` (exit 1): ``about`` is where one looks to find which plugin is broken.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, get_args

from lienthong.cli.exits import EXIT_CODES, EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from lienthong.errors import ConfigIssue


def add_commands(sub: Any) -> None:
    about = sub.add_parser(
        "about",
        help="what this build can do: destination kinds and operations, event types, bundled mappings,"
        " mapping functions with their arguments, jobs",
    )
    about.add_argument("--json", action="store_true", help="print it as one JSON object (for tools)")
    about.set_defaults(handler=_about)


def describe() -> dict[str, Any]:
    """This build, as one JSON-able object."""
    from lienthong import __version__  # noqa: PLC0415 (keep `lienthong --help` fast)
    from lienthong.mappings import FunctionRegistry, SpecLoader  # noqa: PLC0415

    functions, problems = FunctionRegistry.loading_plugins()
    job_names, job_problems = _jobs()
    destinations = destination_kinds()
    return {
        "name": "lienthong",
        "version": __version__,
        "description": "Integration bus between a province's one-stop system and the national systems.",
        "destinations": destinations,
        "event_types": event_types(),
        "mappings": bundled_mappings(SpecLoader(functions), destinations),
        "functions": [_function(f) for f in functions],
        "jobs": job_names,
        "plugin_problems": [str(issue) for issue in [*problems, *job_problems]],
        "exit_codes": {str(code): meaning for code, meaning in EXIT_CODES.items()},
    }


def destination_kinds() -> list[dict[str, Any]]:
    """Each member of the config's ``Destination`` union: its kind, what it is, its operations."""
    from lienthong.config import Destination  # noqa: PLC0415

    union = get_args(Destination)[0]
    kinds = []
    for model in get_args(union):
        (kind,) = get_args(model.model_fields["kind"].annotation)
        operations = [
            {"name": op, "default_mapping": model.default_mappings.get(op)} for op in model.operations
        ]
        kinds.append({"kind": kind, "description": _first_paragraph(model.__doc__), "operations": operations})
    return sorted(kinds, key=lambda k: str(k["kind"]))


def event_types() -> list[dict[str, Any]]:
    """The envelope's event types; ``internal`` ones only lienthong raises (refused from outside)."""
    from lienthong.bus.emit import INTERNAL_EVENT_TYPES  # noqa: PLC0415
    from lienthong.bus.envelope import EVENT_TYPES  # noqa: PLC0415

    return [{"type": t, "internal": t in INTERNAL_EVENT_TYPES} for t in EVENT_TYPES]


def bundled_mappings(loader: Any, destinations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every bundled spec as the loader compiles it, with the operations that use it by default."""
    import yaml  # noqa: PLC0415

    from lienthong.mappings import BUNDLED_PREFIX, bundled_dir  # noqa: PLC0415

    users: dict[str, list[str]] = {}
    for destination in destinations:
        for op in destination["operations"]:
            if op["default_mapping"]:
                users.setdefault(op["default_mapping"], []).append(f"{destination['kind']}.{op['name']}")
    described = []
    for path in sorted(bundled_dir().glob("*.yaml")):
        mapping = loader.load(path)
        written = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        reference = f"{BUNDLED_PREFIX}{mapping.name}"
        described.append(
            {
                "name": mapping.name,
                "reference": reference,
                "description": str(written.get("description", "")),
                "hash": mapping.hash,
                "output": mapping.output,
                "params": [_param(name, p) for name, p in mapping.params.items()],
                "default_for": users.get(reference, []),
            }
        )
    return described


def jobs() -> list[str]:
    """The scheduled jobs this build runs: the built-in ones and installed plugins' (those that load)."""
    return _jobs()[0]


def _jobs() -> tuple[list[str], list[ConfigIssue]]:
    """The jobs, and the problems of the job plugins that do not load."""
    from lienthong.app import BUILTIN_JOBS  # noqa: PLC0415
    from lienthong.scheduler.jobs import JobRegistry  # noqa: PLC0415

    registry, problems = JobRegistry.loading_plugins()
    return sorted({*BUILTIN_JOBS, *registry.names()}), problems


def _param(name: str, param: Any) -> dict[str, Any]:
    given = "default" in param.model_fields_set
    return {
        "name": name,
        "description": param.description,
        "required": param.required and not given,
        "default": param.default if given else None,
    }


def _function(function: Any) -> dict[str, Any]:
    properties = function.args.model_json_schema().get("properties", {})
    arguments = []
    for name, info in function.args.model_fields.items():
        schema = {k: v for k, v in properties.get(name, {}).items() if k not in ("title", "description")}
        required = info.is_required()
        arguments.append(
            {
                "name": name,
                "description": info.description or "",
                "required": required,
                "default": None if required else schema.pop("default", None),
                "schema": schema,
            }
        )
    return {"name": function.name, "description": function.doc, "arguments": arguments}


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n", 1)[0].split())


def _about(args: argparse.Namespace) -> int:
    about = describe()
    if args.json:
        print(json.dumps(about, ensure_ascii=False, indent=2))
    else:
        print("\n".join(text_lines(about)))
    return EXIT_FAILED if about["plugin_problems"] else EXIT_OK


def text_lines(about: dict[str, Any]) -> list[str]:
    """``describe()`` for a person: one section per registry."""
    lines = [f"{about['name']} {about['version']}: {about['description']}", "", "destinations:"]
    for d in about["destinations"]:
        ops = ", ".join(
            o["name"] + (f" ({o['default_mapping']})" if o["default_mapping"] else "")
            for o in d["operations"]
        )
        lines.append(f"  {d['kind']:<11} {d['description']}")
        lines.append(f"  {'':<11} operations: {ops or 'none (a source of look-ups)'}")
    lines += ["", "event types (* raised by lienthong only):"]
    lines += [f"  {e['type']}{' *' if e['internal'] else ''}" for e in about["event_types"]]
    lines += ["", "bundled mappings (bundled:NAME):"]
    for m in about["mappings"]:
        used = f"; default for {', '.join(m['default_for'])}" if m["default_for"] else ""
        lines.append(f"  {m['name']}@{m['hash'][:12]}  {m['output']}  {m['description']}{used}")
    lines += ["", "mapping functions (`lienthong mapping functions` for more):"]
    for f in about["functions"]:
        arguments = ", ".join(
            a["name"] if a["required"] else f"{a['name']}={a['default']!r}" for a in f["arguments"]
        )
        lines.append(f"  {f['name']}({arguments})")
    lines += ["", f"jobs: {', '.join(about['jobs'])}"]
    if about["plugin_problems"]:
        lines += ["", "plugins left out (fix or uninstall their packages):"]
        lines += [f"  {problem}" for problem in about["plugin_problems"]]
    lines += ["", "exit codes:"]
    lines += [f"  {code:>3}  {meaning}" for code, meaning in about["exit_codes"].items()]
    return lines
