"""The named functions a mapping may ``apply``, and the registry integrators extend with plugins.

A function is a *factory*: called once, when a spec loads, with its arguments already validated by a
pydantic model, it returns the one-argument transform that runs on every record. Everything that can be
checked or prepared ahead (patterns, time zones, regexes, tables) is done in the factory, so a bad argument
is a load error and the per-record work is small.

Plugins: a package declares an entry point in the group ``lienthong.mappings`` whose object is a
``Function`` or an iterable of them (see the README's mapping guide). No function can run integrator text
as code. A plugin cannot replace a function: one whose name is a built-in's (or another plugin's) is
refused, since a spec's hash covers its files, not the functions it applies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from importlib.metadata import entry_points
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lienthong import plugins
from lienthong.errors import ConfigError, ConfigIssue
from lienthong.mappings import dates, money
from lienthong.mappings.failure import MappingFailure
from lienthong.mappings.regex import compile_linear
from lienthong.mappings.tables import CodeTable

Transform = Callable[[Any], Any]
ENTRY_POINT_GROUP = "lienthong.mappings"


class Args(BaseModel):
    """Base of every function's argument model: unknown arguments are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(Args):
    pass


@dataclass(frozen=True)
class FunctionContext:
    """What a factory may use besides its arguments: the spec's code tables."""

    tables: Mapping[str, CodeTable]


@dataclass(frozen=True)
class Function:
    """A named function. ``make(args, context)`` returns the transform; ``args`` validates arguments,
    and its field order is the order of positional arguments (``pad: [5, "0"]``)."""

    name: str
    make: Callable[[Any, FunctionContext], Transform]
    args: type[Args]
    doc: str


class FunctionRegistry:
    """Functions by name. ``builtin()`` has the library below; ``with_plugins()`` adds entry points."""

    def __init__(self, functions: Iterable[Function]) -> None:
        self._functions = {f.name: f for f in functions}

    @classmethod
    def builtin(cls) -> FunctionRegistry:
        return cls(_BUILTINS)

    @classmethod
    def with_plugins(cls, group: str = ENTRY_POINT_GROUP) -> FunctionRegistry:
        """The built-ins plus every function installed packages declare under ``group``. Raises
        ConfigError naming each entry point that does not load, declares something else than functions,
        or a function whose name is taken (a built-in's or another plugin's)."""
        registry, issues = cls.loading_plugins(group)
        if issues:
            raise ConfigError(issues)
        return registry

    @classmethod
    def loading_plugins(cls, group: str = ENTRY_POINT_GROUP) -> tuple[FunctionRegistry, list[ConfigIssue]]:
        """The built-ins plus the functions of every plugin that loads and clashes with none, and an issue
        for each plugin that does not (``lienthong about`` shows both)."""
        owners: dict[str, str | None] = dict.fromkeys((f.name for f in _BUILTINS), None)  # None: built in
        functions = list(_BUILTINS)
        loaded, issues = plugins.load_all(entry_points(group=group))
        for entry, found in loaded:
            declared = _declared_functions(found)
            if declared is None:
                issues.append(plugins.issue(entry, f"declares {found!r}, not a Function or a list of them"))
                continue
            clashes = [plugins.issue(entry, problem) for problem in _clashes(declared, owners)]
            if clashes:
                issues.extend(clashes)
                continue
            owners.update((f.name, plugins.describe(entry)) for f in declared)
            functions.extend(declared)
        return cls(functions), issues

    def adding(self, *functions: Function) -> FunctionRegistry:
        return FunctionRegistry([*self._functions.values(), *functions])

    def get(self, name: str) -> Function | None:
        return self._functions.get(name)

    def names(self) -> list[str]:
        return sorted(self._functions)

    def __iter__(self) -> Iterator[Function]:
        return iter(self._functions.values())


def _clashes(declared: list[Function], owners: Mapping[str, str | None]) -> list[str]:
    """Why a plugin's functions cannot be added: a name taken (``owners``: the plugin of each name taken,
    None for a built-in), or declared twice."""
    problems = [
        f"declares the function {f.name!r}, which "
        + ("is built in" if owners[f.name] is None else f"the plugin {owners[f.name]} declares")
        + ": a plugin cannot replace a function; give it another name"
        for f in declared
        if f.name in owners
    ]
    names = [f.name for f in declared]
    problems += [
        f"declares the function {n!r} twice" for n in sorted({n for n in names if names.count(n) > 1})
    ]
    return problems


def _declared_functions(found: object) -> list[Function] | None:
    """What a plugin's entry point declares: a Function or an iterable of them; None for anything else."""
    if isinstance(found, Function):
        return [found]
    if isinstance(found, str | bytes) or not isinstance(found, Iterable):
        return None
    try:
        declared = list(found)
    except Exception:  # a plugin's own iterable may raise anything
        return None
    return declared if all(isinstance(f, Function) for f in declared) else None


def bind(function: Function, raw: Any, context: FunctionContext) -> Transform:
    """Validate ``raw`` arguments (None, a scalar, a list or a mapping) and build the transform.

    Raises ValueError naming the argument at fault.
    """
    fields = list(function.args.model_fields)
    if raw is None:
        data: dict[str, Any] = {}
    elif isinstance(raw, dict):
        data = raw
    elif isinstance(raw, list):
        if len(raw) > len(fields):
            raise ValueError(f"{function.name} takes at most {len(fields)} arguments ({', '.join(fields)})")
        data = dict(zip(fields, raw, strict=False))
    elif fields:
        data = {fields[0]: raw}
    else:
        raise ValueError(f"{function.name} takes no arguments")
    try:
        args = function.args.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        message = "unknown argument" if first["type"] == "extra_forbidden" else first["msg"]
        known = f" (arguments: {', '.join(fields) or 'none'})"
        raise ValueError(f"{function.name}: {where}: {message}{known}") from exc
    return function.make(args, context)


_BUILTINS: list[Function] = []


def _builtin(
    name: str, args: type[Args] = NoArgs
) -> Callable[[Callable[..., Transform]], Callable[..., Transform]]:
    def register(make: Callable[..., Transform]) -> Callable[..., Transform]:
        _BUILTINS.append(Function(name, make, args, (make.__doc__ or "").strip()))
        return make

    return register


def _text(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    raise MappingFailure(f"{name} expects text, got {type(value).__name__}")


def _number(name: str, value: Any) -> Decimal:
    try:
        return money.to_decimal(value)
    except ValueError as exc:
        raise MappingFailure(f"{name}: {exc}") from None


def _items(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise MappingFailure(f"{name} expects a list, got {type(value).__name__}")
    return value


def _plain(number: Decimal) -> int | float:
    """A Decimal as JSON wants it: an int when whole."""
    return int(number) if number == number.to_integral_value() else float(number)


# -- dates -------------------------------------------------------------------------------------------------


class FormatDateArgs(Args):
    format: str = Field(default="yyyyMMddHHmmss", description="Output pattern, e.g. dd/MM/yyyy, or iso8601.")
    tz: str = Field(default="Asia/Ho_Chi_Minh", description="Zone the output is written in.")
    from_format: str = Field(
        default=dates.ISO,
        description="How text input is written, e.g. dd/MM/yyyy HH:mm. With iso8601 (the default) the text"
        " must carry its UTC offset; text read with a pattern and without an offset is in zone tz.",
    )


@_builtin("format_date", FormatDateArgs)
def _format_date(args: FormatDateArgs, _: FunctionContext) -> Transform:
    """Write a date-time (or text in ``from_format``) in ``format``, in zone ``tz``."""
    tz = dates.zone(args.tz)
    write = dates.formatter(args.format)
    read = dates.parser(args.from_format, tz) if args.from_format != dates.ISO else None
    strict_iso = read is None
    copy = dates.iso_copier(args.format) if strict_iso else None

    def format_date(value: Any) -> str:
        text = value if isinstance(value, str) else None
        if text is not None:
            try:
                value = datetime.fromisoformat(text) if strict_iso else read(text)  # type: ignore[misc]
            except ValueError:
                raise MappingFailure(f"not a date-time in {args.from_format}: {text!r}") from None
            if value.tzinfo is None:
                raise MappingFailure("date-time without a UTC offset; say which zone with parse_date")
        elif not isinstance(value, datetime):
            raise MappingFailure(f"format_date expects a date-time, got {type(value).__name__}")
        local = value.astimezone(tz)
        if (
            copy is not None
            and text is not None
            and local.utcoffset() == value.utcoffset()
            and dates.iso_layout(text)
        ):
            return copy(text)  # already in the zone: its digits are the answer
        return write(local)

    return format_date


class ParseDateArgs(Args):
    format: str = Field(default=dates.ISO, description="Input pattern, e.g. dd/MM/yyyy.")
    tz: str = Field(default="Asia/Ho_Chi_Minh", description="Zone of input without an offset.")


@_builtin("parse_date", ParseDateArgs)
def _parse_date(args: ParseDateArgs, _: FunctionContext) -> Transform:
    """Read text in ``format`` into a date-time; input without an offset is in zone ``tz``."""
    read = dates.parser(args.format, dates.zone(args.tz))

    def parse_date(value: Any) -> datetime:
        try:
            return read(_text("parse_date", value))
        except ValueError:
            raise MappingFailure(f"not a date-time in {args.format}: {value!r}") from None

    return parse_date


# -- text --------------------------------------------------------------------------------------------------


@_builtin("trim")
def _trim(_: NoArgs, __: FunctionContext) -> Transform:
    """Strip leading and trailing white space."""
    return lambda value: _text("trim", value).strip()


@_builtin("upper")
def _upper(_: NoArgs, __: FunctionContext) -> Transform:
    """Upper case (Vietnamese letters included)."""
    return lambda value: _text("upper", value).upper()


@_builtin("lower")
def _lower(_: NoArgs, __: FunctionContext) -> Transform:
    """Lower case."""
    return lambda value: _text("lower", value).lower()


@_builtin("to_string")
def _to_string(_: NoArgs, __: FunctionContext) -> Transform:
    """Numbers as text (``1`` → ``"1"``); booleans as ``true``/``false``."""

    def to_string(value: Any) -> str:
        if type(value) is str:
            return value
        if type(value) is int:
            return str(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        return _text("to_string", value)

    return to_string


class SplitNameArgs(Args):
    part: Literal["family", "middle", "given"] | None = Field(
        default=None, description="One part as text; without it, an object {Ho, ChuDem, Ten}."
    )


@_builtin("split_name", SplitNameArgs)
def _split_name(args: SplitNameArgs, _: FunctionContext) -> Transform:
    """Split a Vietnamese full name: family name first, given name last, the middle in between."""
    index = {"family": "Ho", "middle": "ChuDem", "given": "Ten"}.get(args.part or "")

    def split_name(value: Any) -> Any:
        words = _text("split_name", value).split()
        parts = {
            "Ho": words[0] if len(words) > 1 else "",
            "ChuDem": " ".join(words[1:-1]),
            "Ten": words[-1] if words else "",
        }
        return parts[index] if index else parts

    return split_name


class JoinArgs(Args):
    sep: str = Field(default=" ", description="Put between the items.")
    skip_empty: bool = Field(default=True, description="Leave out nulls and empty text.")


@_builtin("join", JoinArgs)
def _join(args: JoinArgs, _: FunctionContext) -> Transform:
    """Join a list (``from: [a, b]``, or a ``[*]`` path) with ``sep``."""
    sep, skip = args.sep, args.skip_empty

    def join(value: Any) -> str:
        items = _items("join", value)
        return sep.join(_text("join", v) for v in items if not (skip and (v is None or v == "")))

    return join


class PadArgs(Args):
    width: int = Field(ge=1, le=1000, description="The length to pad to, in characters.")
    char: str = Field(default="0", min_length=1, max_length=1, description="The one character to pad with.")
    side: Literal["left", "right"] = Field(default="left", description="Where the padding goes.")


@_builtin("pad", PadArgs)
def _pad(args: PadArgs, _: FunctionContext) -> Transform:
    """Pad text to ``width`` with ``char`` on ``side``; longer text is left as it is."""
    if args.side == "left":
        return lambda value: _text("pad", value).rjust(args.width, args.char)
    return lambda value: _text("pad", value).ljust(args.width, args.char)


class RegexArgs(Args):
    pattern: str = Field(
        description="A regular expression in RE2 syntax: Python's without lookaround or backreferences, so"
        " that it runs in linear time on any input (quote it in YAML)."
    )
    group: int | str = Field(default=0, description="Group number or name; 0 is the whole match.")


@_builtin("regex_extract", RegexArgs)
def _regex_extract(args: RegexArgs, _: FunctionContext) -> Transform:
    """The first match of ``pattern`` (RE2 syntax: linear time), or null when nothing matches."""
    regex = compile_linear(args.pattern, what="regex_extract")
    group = args.group
    if (isinstance(group, int) and group > regex.groups) or (
        isinstance(group, str) and group not in regex.groupindex
    ):
        raise ValueError(f"regex_extract: the pattern has no group {group!r}")

    def regex_extract(value: Any) -> str | None:
        match = regex.search(_text("regex_extract", value))
        return match.group(group) if match else None

    return regex_extract


class ReplaceArgs(Args):
    old: str = Field(min_length=1, description="The text to find.")
    new: str = Field(default="", description="What to put instead; empty removes it.")


@_builtin("replace", ReplaceArgs)
def _replace(args: ReplaceArgs, _: FunctionContext) -> Transform:
    """Replace every ``old`` with ``new`` (plain text, not a pattern)."""
    return lambda value: _text("replace", value).replace(args.old, args.new)


class AffixArgs(Args):
    text: str = Field(description="The text to add.")


@_builtin("prefix", AffixArgs)
def _prefix(args: AffixArgs, _: FunctionContext) -> Transform:
    """Put ``text`` before the value."""
    return lambda value: args.text + _text("prefix", value)


@_builtin("suffix", AffixArgs)
def _suffix(args: AffixArgs, _: FunctionContext) -> Transform:
    """Put ``text`` after the value."""
    return lambda value: _text("suffix", value) + args.text


class TruncateArgs(Args):
    max: int = Field(ge=0, description="How many characters to keep.")


@_builtin("truncate", TruncateArgs)
def _truncate(args: TruncateArgs, _: FunctionContext) -> Transform:
    """Keep the first ``max`` characters."""
    return lambda value: _text("truncate", value)[: args.max]


# -- numbers and money -------------------------------------------------------------------------------------


@_builtin("to_int")
def _to_int(_: NoArgs, __: FunctionContext) -> Transform:
    """A whole number from a number or text; a fraction is an error."""

    def to_int(value: Any) -> int:
        number = _number("to_int", value)
        if number != number.to_integral_value():
            raise MappingFailure(f"to_int: {value!r} is not a whole number")
        return int(number)

    return to_int


@_builtin("to_number")
def _to_number(_: NoArgs, __: FunctionContext) -> Transform:
    """A number from text (``"8000.5"``): an int when whole, else a float."""
    return lambda value: _plain(_number("to_number", value))


class RoundArgs(Args):
    digits: int = Field(default=0, ge=0, le=12, description="Decimal places to keep.")


@_builtin("round", RoundArgs)
def _round(args: RoundArgs, _: FunctionContext) -> Transform:
    """Round half-up (as money is rounded, not to even) to ``digits`` places."""
    quantum = Decimal(1).scaleb(-args.digits)
    return lambda value: _plain(_number("round", value).quantize(quantum, rounding=ROUND_HALF_UP))


class FormatNumberArgs(Args):
    decimals: int = Field(default=0, ge=0, le=12, description="Decimal places written (rounded half-up).")
    thousands: str = Field(default=".", description="Between groups of three digits; empty for none.")
    decimal: str = Field(default=",", description="Before the decimal places.")


@_builtin("format_number", FormatNumberArgs)
def _format_number(args: FormatNumberArgs, _: FunctionContext) -> Transform:
    """Group thousands, Vietnamese style by default: 1234567.5 → ``1.234.568``."""

    def format_number(value: Any) -> str:
        number = _number("format_number", value)
        return money.format_number(
            number, decimals=args.decimals, thousands=args.thousands, decimal=args.decimal
        )

    return format_number


class InWordsArgs(Args):
    currency: str = Field(default="đồng", description="Appended after the words; empty for none.")


@_builtin("money_in_words", InWordsArgs)
def _money_in_words(args: InWordsArgs, _: FunctionContext) -> Transform:
    """A whole amount in Vietnamese words: 8000 → ``Tám nghìn đồng``."""
    suffix = f" {args.currency}" if args.currency else ""

    def money_in_words(value: Any) -> str:
        number = _number("money_in_words", value)
        if number != number.to_integral_value() or number < 0:
            raise MappingFailure(f"money_in_words needs a whole, non-negative amount, got {value!r}")
        return money.in_words(int(number)) + suffix

    return money_in_words


@_builtin("sum")
def _sum(_: NoArgs, __: FunctionContext) -> Transform:
    """The sum of a list of numbers (nulls skipped); 0 for an empty list."""

    def total(value: Any) -> int | float:
        return _plain(sum((_number("sum", v) for v in _items("sum", value) if v is not None), Decimal(0)))

    return total


@_builtin("count")
def _count(_: NoArgs, __: FunctionContext) -> Transform:
    """The number of items in a list."""
    return lambda value: len(_items("count", value))


class AddArgs(Args):
    amount: int | float = Field(description="The number to add (negative to subtract).")


@_builtin("add", AddArgs)
def _add(args: AddArgs, _: FunctionContext) -> Transform:
    """Add a constant."""
    amount = money.to_decimal(args.amount)
    return lambda value: _plain(_number("add", value) + amount)


class MultiplyArgs(Args):
    factor: int | float = Field(description="The number to multiply by.")


@_builtin("multiply", MultiplyArgs)
def _multiply(args: MultiplyArgs, _: FunctionContext) -> Transform:
    """Multiply by a constant (exactly, in decimal)."""
    factor = money.to_decimal(args.factor)
    return lambda value: _plain(_number("multiply", value) * factor)


# -- lookups, checks, structure -----------------------------------------------------------------------------


class LookupArgs(Args):
    table: str = Field(description="The name of a table in the spec's tables.")


@_builtin("lookup", LookupArgs)
def _lookup(args: LookupArgs, context: FunctionContext) -> Transform:
    """Translate a code through one of the spec's ``tables`` (strict tables refuse unknown codes)."""
    table = context.tables.get(args.table)
    if table is None:
        raise ValueError(
            f"lookup: unknown table {args.table!r} (known: {', '.join(sorted(context.tables)) or 'none'})"
        )
    return table.lookup


class OneOfArgs(Args):
    values: list[Any] = Field(min_length=1, description="The values allowed, compared as JSON values.")


@_builtin("one_of", OneOfArgs)
def _one_of(args: OneOfArgs, _: FunctionContext) -> Transform:
    """Pass the value through when it is one of ``values``; anything else is an error."""
    allowed = args.values
    shown = ", ".join(repr(v) for v in allowed)

    def one_of(value: Any) -> Any:
        # 1 == True in Python; a boolean only matches a boolean.
        if any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in allowed):
            return value
        raise MappingFailure(f"expected one of {shown}, got {value!r}")

    return one_of


@_builtin("coalesce")
def _coalesce(_: NoArgs, __: FunctionContext) -> Transform:
    """The first item of a list that is neither null nor empty text (``from: [a, b]``)."""
    return lambda value: next((v for v in _items("coalesce", value) if v is not None and v != ""), None)


@_builtin("as_list")
def _as_list(_: NoArgs, __: FunctionContext) -> Transform:
    """The value as a one-item list (a list stays as it is), for formats that want a list of one."""
    return lambda value: value if isinstance(value, list) else [value]


@_builtin("first")
def _first(_: NoArgs, __: FunctionContext) -> Transform:
    """The first item of a list, or null when it is empty."""
    return lambda value: next(iter(_items("first", value)), None)


@_builtin("not_empty")
def _not_empty(_: NoArgs, __: FunctionContext) -> Transform:
    """true when the value is a non-empty text, list or object, or any number."""
    return lambda value: value not in ("", [], {})


@_builtin("json")
def _json(_: NoArgs, __: FunctionContext) -> Transform:
    """The value as compact JSON text (keys kept in order, UTF-8 kept), e.g. EMC's ``User`` field."""
    return lambda value: orjson.dumps(value).decode()


@_builtin("sha256")
def _sha256(_: NoArgs, __: FunctionContext) -> Transform:
    """Lowercase hex SHA-256 of the text's UTF-8 bytes."""
    return lambda value: hashlib.sha256(_text("sha256", value).encode()).hexdigest()
