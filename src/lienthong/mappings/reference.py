"""The functions reference page (``docs/mapping-functions.md``), made from the registry.

Each function's signature, description and arguments come from its ``Function`` and pydantic argument
model; the examples below are run through the functions while the page is made, so a page whose example no
longer holds cannot be written. ``lienthong mapping functions --markdown`` prints the page; a test fails
when the committed page differs from it.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic.fields import FieldInfo

from lienthong._yaml import load_located
from lienthong.mappings import dates
from lienthong.mappings.functions import Function, FunctionContext, FunctionRegistry, bind
from lienthong.mappings.tables import CodeTable

REGENERATE = "lienthong mapping functions --markdown > docs/mapping-functions.md"


@dataclass(frozen=True)
class Example:
    """``apply:`` written as in a spec (a call or a list of calls), a value, and what the calls make of it."""

    apply: Any
    value: Any
    result: Any


_TABLES = {"channel": CodeTable("channel", {"in_person": 1, "online": 2, "postal": 3})}
_TIME = "2026-11-23T09:05:00+07:00"

EXAMPLES: dict[str, list[Example]] = {
    "format_date": [
        Example("format_date", _TIME, "20261123090500"),
        Example({"format_date": "dd/MM/yyyy"}, "2026-11-23T20:00:00+00:00", "24/11/2026"),
        Example({"format_date": {"format": "iso8601", "tz": "UTC"}}, _TIME, "2026-11-23T02:05:00+00:00"),
        Example({"format_date": {"from_format": "dd/MM/yyyy HH:mm"}}, "23/11/2026 09:05", "20261123090500"),
        Example(
            {"format_date": {"from_format": "dd/MM/yyyy", "format": "yyyy-MM-dd"}}, "23/11/2026", "2026-11-23"
        ),
    ],
    "parse_date": [
        Example([{"parse_date": "dd/MM/yyyy HH:mm"}, "format_date"], "23/11/2026 09:05", "20261123090500")
    ],
    "trim": [Example("trim", "  Hà Nội ", "Hà Nội")],
    "upper": [Example("upper", "đơn đề nghị", "ĐƠN ĐỀ NGHỊ")],
    "lower": [Example("lower", "ĐƠN", "đơn")],
    "to_string": [Example("to_string", 2, "2"), Example("to_string", True, "true")],
    "split_name": [
        Example("split_name", "Nguyễn Văn An", {"Ho": "Nguyễn", "ChuDem": "Văn", "Ten": "An"}),
        Example({"split_name": "given"}, "Nguyễn Thị Minh Khai", "Khai"),
    ],
    "join": [
        Example("join", ["Số 1", None, "Tràng Tiền"], "Số 1 Tràng Tiền"),
        Example({"join": ", "}, ["Phường Hàng Bài", "Quận Hoàn Kiếm"], "Phường Hàng Bài, Quận Hoàn Kiếm"),
    ],
    "pad": [Example({"pad": 5}, "42", "00042"), Example({"pad": [6, "*", "right"]}, "AB", "AB****")],
    "regex_extract": [
        Example({"regex_extract": r"\d+"}, "BN-00042", "00042"),
        Example({"regex_extract": {"pattern": r"^(?P<unit>[^-]+)-", "group": "unit"}}, "H56-0001", "H56"),
    ],
    "replace": [Example({"replace": ["-", ""]}, "000.21.32-H56", "000.21.32H56")],
    "prefix": [Example({"prefix": "BN-"}, "00042", "BN-00042")],
    "suffix": [Example({"suffix": " VND"}, "8000", "8000 VND")],
    "truncate": [Example({"truncate": 5}, "Đăng ký kinh doanh", "Đăng ")],
    "to_int": [Example("to_int", "8000", 8000)],
    "to_number": [Example("to_number", "8000.5", 8000.5), Example("to_number", "8000", 8000)],
    "round": [Example("round", 2.5, 3), Example({"round": 1}, "8000.25", 8000.3)],
    "format_number": [
        Example("format_number", 1234567.5, "1.234.568"),
        Example({"format_number": {"decimals": 2, "thousands": ",", "decimal": "."}}, 1234.5, "1,234.50"),
    ],
    "money_in_words": [
        Example("money_in_words", 8000, "Tám nghìn đồng"),
        Example({"money_in_words": ""}, 105000, "Một trăm linh năm nghìn"),
    ],
    "sum": [Example("sum", [50000, None, "8000"], 58000)],
    "count": [Example("count", ["a", "b"], 2)],
    "add": [Example({"add": 1}, 41, 42)],
    "multiply": [Example({"multiply": 0.1}, 8000, 800)],
    "lookup": [Example({"lookup": "channel"}, "online", 2)],
    "one_of": [Example({"one_of": {"values": [0, 1, 3, 4]}}, 3, 3)],
    "coalesce": [Example("coalesce", [None, "", "2026-11-23"], "2026-11-23")],
    "as_list": [Example("as_list", "a", ["a"]), Example("as_list", ["a"], ["a"])],
    "first": [Example("first", ["a", "b"], "a"), Example("first", [], None)],
    "not_empty": [Example("not_empty", [], False), Example("not_empty", 0, True)],
    "json": [Example("json", {"Ten": "An", "Tuoi": 30}, '{"Ten":"An","Tuoi":30}')],
    "sha256": [Example("sha256", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")],
}

_INTRO = """\
# Mapping functions

<!-- Made by `{regenerate}` from the function registry. Do not edit by hand: a test fails when this page
differs from what the command prints. -->

A field's `apply:` runs functions on the field's value, after `default`, `required` and `table` (see
[Writing a mapping](../README.md#writing-a-mapping)). Arguments are checked when the spec loads, so a
wrong argument stops the spec from loading, naming the line; a function that cannot handle a record's
value (text where a number belongs) refuses that record, naming the output field and the input path.
Every example on this page is run through the functions when the page is made.

## Writing a call

| `apply:` | what it means |
|---|---|
| `trim` | one function, without arguments |
| `{{format_date: dd/MM/yyyy}}` | one argument: the function's first |
| `{{pad: [5, "0"]}}` | arguments by position, in the order of the function's table below |
| `{{format_date: {{format: dd/MM/yyyy, tz: UTC}}}}` | arguments by name |
| `[trim, upper, {{truncate: 50}}]` | a list: each function in turn, on what the one before made |

A list of calls is how steps are combined. With `from:` a list of paths, the value is the list of their
values, which `coalesce`, `join` and `sum` take:

```yaml
ThoiDiemXuLy:
  from: [dossier.step.at, occurred_at]   # [null, "2026-11-23T09:05:00+07:00"] when the step has no time
  apply: [coalesce, format_date]         # the first that is there, then written as yyyyMMddHHmmss
```

{list_examples}

## Date and time patterns

`format_date`'s `format` and `from_format`, and `parse_date`'s `format`, take patterns in Java's letters,
as the portal and most Vietnamese systems describe their formats. Letters: {letters}. Other characters are
copied as they are; text in single quotes is copied without reading its letters (`dd 'tháng' MM`). An
unknown letter is a load error. `iso8601` means ISO 8601 text (`2026-11-23T09:05:00+07:00`).

Time zones (`tz`) are IANA names (`Asia/Ho_Chi_Minh`, the default), `UTC`, or a fixed offset (`+07:00`).
`format_date` reads text with `from_format`: with `iso8601` (the default) the text must carry its offset,
or the record is refused; with a pattern, text without an offset is taken to be in `tz`. Output is written
in `tz`.

## Functions

{index}
"""


def functions_markdown(registry: FunctionRegistry | None = None) -> str:
    """The reference page for ``registry`` (the built-ins by default). Raises ValueError when an
    example does not give what it says."""
    registry = registry or FunctionRegistry.builtin()
    functions = list(registry)
    intro = _INTRO.format(
        regenerate=REGENERATE,
        list_examples="\n".join(_example_line(e) for e in _LIST_EXAMPLES),
        letters=", ".join(f"`{t}`" for t in dates.SUPPORTED.split(", ") if t != dates.ISO),
        index=" · ".join(f"[`{f.name}`](#{f.name})" for f in functions),
    )
    sections = ["\n".join(_section(f, registry)) for f in functions]
    return intro + "\n" + "\n\n".join(sections) + "\n"


_LIST_EXAMPLES = [
    Example(["trim", "upper", {"truncate": 8}], "  giấy phép lái xe ", "GIẤY PHÉ"),
    Example(["to_number", {"multiply": 1.1}, "round", "format_number"], "1234567", "1.358.024"),
]


def signature(function: Function) -> str:
    """``pad(width, char='0', side='left')``: the arguments in positional order, with defaults."""
    fields = function.args.model_fields
    arguments = ", ".join(
        name if info.is_required() else f"{name}={info.default!r}" for name, info in fields.items()
    )
    return f"{function.name}({arguments})"


def _section(function: Function, registry: FunctionRegistry) -> Iterator[str]:
    yield f"### {function.name}"
    yield ""
    yield f"`{signature(function)}`"
    yield ""
    yield function.doc or "(no description)"
    fields = function.args.model_fields
    if fields:
        yield ""
        yield "| argument | type | default | what it is |"
        yield "|---|---|---|---|"
        yield from (_argument_row(name, info) for name, info in fields.items())
    examples = EXAMPLES.get(function.name, [])
    if examples:
        yield ""
        yield from (_example_line(e, registry) for e in examples)


def _argument_row(name: str, info: FieldInfo) -> str:
    default = (
        "required" if info.is_required() else ("none" if info.default is None else f"`{_flow(info.default)}`")
    )
    kind = ", ".join(filter(None, [_type_name(info.annotation), _limits(info)]))
    what = (info.description or "").replace("|", "\\|")
    return f"| `{name}` | {kind} | {default} | {what} |"


def _limits(info: FieldInfo) -> str:
    """``ge``/``le`` as ``1 to 1000``, lengths as ``length 1`` or ``length at least 1``."""
    rules = {type(rule): rule for rule in info.metadata}
    low = rules[Ge].ge if Ge in rules else None
    high = rules[Le].le if Le in rules else None
    shortest = rules[MinLen].min_length if MinLen in rules else None
    longest = rules[MaxLen].max_length if MaxLen in rules else None
    parts = []
    if low is not None or high is not None:
        parts.append(
            f"{low} to {high}"
            if low is not None and high is not None
            else (f"{low} or more" if low is not None else f"up to {high}")
        )
    if shortest is not None or longest is not None:
        if shortest == longest:
            parts.append(f"length {shortest}")
        else:
            parts.append(f"length at least {shortest}" if longest is None else f"length up to {longest}")
    return ", ".join(parts)


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in get_args(annotation))
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if set(members) == {int, float}:
            return "number"
        return " or ".join(dict.fromkeys(_type_name(a) for a in members))
    if origin is list:
        return "list"
    return {str: "text", int: "whole number", float: "number", bool: "`true` or `false`"}.get(
        annotation, "any value"
    )


def _example_line(example: Example, registry: FunctionRegistry | None = None) -> str:
    written = _flow(example.apply)
    if load_located(written, "example").data != example.apply:
        raise ValueError(f"example apply: {written} does not read back as {example.apply!r}")
    actual = _run(example, registry or FunctionRegistry.builtin())
    if actual != example.result or type(actual) is not type(example.result):
        raise ValueError(
            f"example apply: {written} on {example.value!r} gave {actual!r}, not {example.result!r}"
        )
    return f"- `apply: {_flow(example.apply)}`: `{_json(example.value)}` → `{_json(example.result)}`"


def _run(example: Example, registry: FunctionRegistry) -> Any:
    calls = example.apply if isinstance(example.apply, list) else [example.apply]
    value = example.value
    for call in calls:
        name, raw = (call, None) if isinstance(call, str) else next(iter(call.items()))
        function = registry.get(name)
        if function is None:
            raise ValueError(f"example calls an unknown function {name!r}")
        value = bind(function, raw, FunctionContext(_TABLES))(value)
    return value


def _flow(value: Any) -> str:
    """``value`` as a spec would write it in YAML's flow style."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, str):
        if _plain_text(value):
            return value
        return f"'{value}'" if "'" not in value else _json(value)
    return _json(value)


def _plain_text(value: str) -> bool:
    """Whether YAML reads ``value`` unquoted as this very text."""
    return (
        value[:1].isalpha()
        and value.strip() == value
        and not value[0].isdigit()
        and value not in ("true", "false", "null")
        and not value.startswith(("-", "?"))
        and not any(c in value for c in ":#,[]{}&*!|>'\"%@`\\")
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
