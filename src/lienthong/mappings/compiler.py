"""Compiling a spec into one Python callable, once, when it loads.

Every field becomes a closure ``(current, scope) -> value``; objects and lists loop over their children's
closures. Paths, tables, functions and conditions are resolved here, so a broken spec fails at load time
with every problem listed (file, line, key, hint) and the per-record work is only the closures. Nothing an
integrator writes is ever run as Python.

The personal-data check runs here too: each value knows which input paths it copies, and a value copying a
path listed in ``personal_sources`` must sit in an output tagged ``personal``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from lienthong._yaml import LocatedDocument, PathKey, format_path
from lienthong.errors import ConfigIssue
from lienthong.mappings.conditions import compile_condition
from lienthong.mappings.failure import MappingFailure
from lienthong.mappings.functions import FunctionContext, FunctionRegistry, Transform, bind
from lienthong.mappings.paths import Getter, Path, Scope, compile_getter, parse_path
from lienthong.mappings.spec import Call, FieldSpec, Param, SpecBody, Table
from lienthong.mappings.tables import CodeTable

Pattern = tuple[str, ...]


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = _Omit()
"""What a field whose ``when`` does not hold (and has no ``else``) returns: its key is left out."""

_XML_NAME = re.compile(r"^@?[A-Za-z_][\w.-]*$")


@dataclass(frozen=True)
class At:
    """Where something was written: a document and the YAML path in it."""

    doc: LocatedDocument
    path: PathKey = ()

    def __truediv__(self, key: str | int) -> At:
        return At(self.doc, (*self.path, key))

    def issue(self, message: str, *, line_from: At | None = None) -> ConfigIssue:
        line = self.doc.line_of((line_from or self).path)
        return ConfigIssue(path=format_path(self.path), message=message, file=self.doc.file, line=line)


@dataclass
class Unit:
    """A spec ready to compile: its parts after ``extends`` and ``include``, each with where it came from."""

    name: str
    body: dict[str, Any]
    output: str = "json"
    xml_root: str | None = None
    missing: str = "null"
    params: dict[str, tuple[Param, At]] = field(default_factory=dict)
    tables: dict[str, tuple[Table, At]] = field(default_factory=dict)
    personal: list[tuple[str, At]] = field(default_factory=list)
    fields: dict[str, tuple[FieldSpec | str, At]] = field(default_factory=dict)

    @classmethod
    def from_body(cls, name: str, spec: SpecBody, at: At, body: dict[str, Any]) -> Unit:
        return cls(
            name=name,
            body=body,
            output=spec.output,
            xml_root=spec.xml_root,
            missing=spec.missing,
            params={k: (v, at / "params" / k) for k, v in spec.params.items()},
            tables={k: (v, at / "tables" / k) for k, v in spec.tables.items()},
            personal=[(p, at / "personal_sources" / i) for i, p in enumerate(spec.personal_sources)],
            fields={k: (v, at / "fields" / k) for k, v in spec.fields.items()},
        )


class Resolver(Protocol):
    def unit_for(self, ref: str, at: At) -> Unit | None:
        """The unit a ``mapping: file.yaml`` names, or None after recording why not."""
        ...


@dataclass(frozen=True)
class Node:
    """A compiled value: its closure, the input patterns it copies, and whether it can be left out."""

    fn: Getter
    sources: frozenset[Pattern] = frozenset()
    may_omit: bool = False
    source_text: str | None = None
    path: Path | None = None  # set when the value is a plain path: a required one is checked in the getter


@dataclass(frozen=True)
class _Ctx:
    unit: Unit
    tables: Mapping[str, CodeTable]
    personal: tuple[tuple[Pattern, str], ...]
    root: Pattern = ()  # where `$.` paths start, in the top record's terms
    base: Pattern = ()  # where relative paths start
    omit_missing: bool = False

    def absolute(self, path: Path) -> Pattern:
        """The path's pattern from the top record's root."""
        return (*(self.root if path.absolute else self.base), *path.pattern)


class Compiler:
    """Compiles units; collects every problem in ``issues`` instead of stopping at the first."""

    def __init__(self, functions: FunctionRegistry, resolver: Resolver) -> None:
        self.functions = functions
        self.resolver = resolver
        self.issues: list[ConfigIssue] = []
        self.params: dict[str, Param] = {}
        self._stack: list[str] = []

    def compile_unit(
        self,
        unit: Unit,
        *,
        root: Pattern = (),
        personal: tuple[tuple[Pattern, str], ...] = (),
        tagged: bool = False,
    ) -> Node:
        if unit.name in self._stack:
            chain = " → ".join([*self._stack, unit.name])
            self.issues.append(
                ConfigIssue(path="mapping", message=f"mappings use each other in a cycle: {chain}")
            )
            return Node(lambda _c, _s: None)
        self._stack.append(unit.name)
        try:
            ctx = self._context(unit, root, personal)
            if unit.output == "xml" and unit.xml_root and not _XML_NAME.match(unit.xml_root):
                self.issues.append(
                    ConfigIssue(path="xml_root", message=f"not an XML element name: {unit.xml_root!r}")
                )
            entries = [(key, spec, at) for key, (spec, at) in unit.fields.items()]
            return self._object(entries, ctx, tagged)
        finally:
            self._stack.pop()

    # -- building blocks -----------------------------------------------------------------------------------

    def _context(self, unit: Unit, root: Pattern, personal: tuple[tuple[Pattern, str], ...]) -> _Ctx:
        for name, (param, _) in unit.params.items():
            self.params.setdefault(name, param)
        tables = {}
        for name, (table, _) in unit.tables.items():
            default = table.default if "default" in table.model_fields_set else ...
            tables[name] = (
                CodeTable(name, table.values, strict=table.strict)
                if default is ...
                else CodeTable(name, table.values, strict=table.strict, default=default)
            )
        own: list[tuple[Pattern, str]] = []
        for text, at in unit.personal:
            try:
                path = parse_path(text)
            except ValueError as exc:
                self.issues.append(at.issue(str(exc)))
                continue
            own.append(((*root, *path.pattern), text))
        return _Ctx(unit, tables, (*personal, *own), root, root, unit.missing == "omit")

    def _object(self, entries: list[tuple[str, FieldSpec | str, At]], ctx: _Ctx, tagged: bool) -> Node:
        compiled: list[tuple[str, Getter]] = []
        sources: dict[str, str | None] = {}
        may_omit = ctx.omit_missing
        for key, spec, at in entries:
            if ctx.unit.output == "xml" and not _XML_NAME.match(key):
                self.issues.append(at.issue(f"not an XML element name: {key!r}"))
            node = self._field(spec, at, ctx, tagged)
            compiled.append((key, node.fn))
            sources[key] = node.source_text
            may_omit = may_omit or node.may_omit
        return Node(_object_fn(tuple(compiled), sources, drop_none=ctx.omit_missing, may_omit=may_omit))

    def _field(self, spec: FieldSpec | str, at: At, ctx: _Ctx, tagged: bool) -> Node:
        if isinstance(spec, str):
            spec = FieldSpec(from_=spec)
        tagged = tagged or spec.personal is not None
        node = self._value(spec, at, ctx, tagged)
        if node.sources and not tagged:
            self._check_personal(node, at, ctx)
        return node

    def _check_personal(self, node: Node, at: At, ctx: _Ctx) -> None:
        for source in sorted(node.sources):
            for pattern, text in ctx.personal:
                if _overlaps(source, pattern):
                    self.issues.append(
                        at.issue(
                            f"copies personal data ({text}) into an output not tagged personal; "
                            "tag it with `personal: {basis: ...}` or stop copying it"
                        )
                    )
                    return

    def _value(self, spec: FieldSpec, at: At, ctx: _Ctx, tagged: bool) -> Node:
        node = self._source(spec, at, ctx, tagged)
        node = self._post(spec, at, ctx, node)
        if spec.when is not None:
            node = self._when(spec, at, ctx, tagged, node)
        return node

    def _source(self, spec: FieldSpec, at: At, ctx: _Ctx, tagged: bool) -> Node:
        fields = spec.model_fields_set
        if spec.each is not None:
            return self._each(spec, at, ctx, tagged)
        if isinstance(spec.from_, str):
            return self._from_path(spec, at, ctx, tagged)
        if isinstance(spec.from_, list):
            return self._from_paths(spec.from_, at / "from", ctx)
        if spec.fields is not None:
            entries = [(k, v, at / "fields" / k) for k, v in spec.fields.items()]
            return self._object(entries, ctx, tagged)
        if spec.cases is not None:
            return self._cases(spec, at, ctx, tagged)
        if spec.param is not None:
            return self._param(spec.param, at / "param", ctx)
        if "const" in fields:
            constant = spec.const
            return Node(lambda _c, _s: constant)
        assert spec.mapping is not None
        return self._sub_mapping(spec.mapping, at / "mapping", ctx, ctx.base, tagged)

    def _path(self, text: str, at: At) -> Path | None:
        try:
            return parse_path(text)
        except ValueError as exc:
            self.issues.append(at.issue(str(exc)))
            return None

    def _from_path(self, spec: FieldSpec, at: At, ctx: _Ctx, tagged: bool) -> Node:
        assert isinstance(spec.from_, str)
        path = self._path(spec.from_, at / "from")
        if path is None:
            return Node(lambda _c, _s: None)
        get = compile_getter(path)
        pattern = ctx.absolute(path)
        if spec.mapping is None:
            copies = frozenset() if path.special else frozenset({pattern})
            return Node(get, copies, source_text=path.text, path=path)
        sub = self._sub_mapping(spec.mapping, at / "mapping", ctx, pattern, tagged)
        apply = sub.fn
        return Node(lambda cur, scope: apply(get(cur, scope), scope), source_text=path.text)

    def _from_paths(self, texts: list[str], at: At, ctx: _Ctx) -> Node:
        paths = [p for i, t in enumerate(texts) if (p := self._path(t, at / i)) is not None]
        getters = tuple(compile_getter(p) for p in paths)

        def gather(cur: Any, scope: Scope) -> list[Any] | None:
            values = [g(cur, scope) for g in getters]
            return values if any(v is not None and v != "" for v in values) else None

        return Node(gather, frozenset(ctx.absolute(p) for p in paths), source_text=", ".join(texts))

    def _param(self, name: str, at: At, ctx: _Ctx) -> Node:
        if name not in ctx.unit.params:
            declared = ", ".join(sorted(ctx.unit.params)) or "none declared"
            self.issues.append(at.issue(f"unknown param {name!r} (declared in params: {declared})"))

        def param(_cur: Any, scope: Scope) -> Any:
            try:
                return scope.params[name]
            except KeyError:
                raise MappingFailure(f"the route gives no value for param {name!r}") from None

        return Node(param)

    def _each(self, spec: FieldSpec, at: At, ctx: _Ctx, tagged: bool) -> Node:
        assert spec.each is not None
        path = self._path(spec.each, at / "each")
        if path is None:
            return Node(lambda _c, _s: [])
        items_pattern = (*ctx.absolute(path), "*")
        item_ctx = replace(ctx, base=items_pattern)
        where = self._condition(spec.where, at / "where") if spec.where is not None else None
        if spec.fields is not None:
            entries = [(k, v, at / "fields" / k) for k, v in spec.fields.items()]
            item = self._object(entries, item_ctx, tagged)
        elif spec.value is not None:
            value_spec = FieldSpec(from_=spec.value) if isinstance(spec.value, str) else spec.value
            item = self._value(value_spec, at / "value", item_ctx, tagged)
        else:
            assert spec.mapping is not None
            item = self._sub_mapping(spec.mapping, at / "mapping", item_ctx, items_pattern, tagged)
        missing = _missing_fn(spec)
        return Node(
            _each_fn(
                compile_getter(path), path.text, item.fn, where=where, missing=missing, may_omit=item.may_omit
            ),
            item.sources,
            source_text=path.text,
        )

    def _cases(self, spec: FieldSpec, at: At, ctx: _Ctx, tagged: bool) -> Node:
        pairs: list[tuple[Callable[[Any, Scope], bool], Getter]] = []
        sources: set[Pattern] = set()
        for i, case in enumerate(spec.cases or []):
            pred = self._condition(case.when, at / "cases" / i / "when")
            value = FieldSpec(from_=case.value) if isinstance(case.value, str) else case.value
            node = self._value(value, at / "cases" / i / "value", ctx, tagged)
            pairs.append((pred, node.fn))
            sources |= node.sources
        otherwise = self._else(spec, at, ctx, tagged)
        if otherwise is not None:
            sources |= otherwise.sources
        fallback = otherwise.fn if otherwise is not None else None

        def cases(cur: Any, scope: Scope) -> Any:
            for pred, value in pairs:
                if pred(cur, scope):
                    return value(cur, scope)
            return fallback(cur, scope) if fallback is not None else OMIT

        return Node(cases, frozenset(sources), may_omit=fallback is None)

    def _when(self, spec: FieldSpec, at: At, ctx: _Ctx, tagged: bool, node: Node) -> Node:
        assert spec.when is not None
        pred = self._condition(spec.when, at / "when")
        otherwise = self._else(spec, at, ctx, tagged) if spec.cases is None else None
        then, fallback = node.fn, (otherwise.fn if otherwise is not None else None)

        def when(cur: Any, scope: Scope) -> Any:
            if pred(cur, scope):
                return then(cur, scope)
            return fallback(cur, scope) if fallback is not None else OMIT

        sources = node.sources | (otherwise.sources if otherwise is not None else frozenset())
        return Node(when, sources, may_omit=fallback is None or node.may_omit, source_text=node.source_text)

    def _else(self, spec: FieldSpec, at: At, ctx: _Ctx, tagged: bool) -> Node | None:
        if spec.else_ is None:
            return None
        value = FieldSpec(from_=spec.else_) if isinstance(spec.else_, str) else spec.else_
        return self._value(value, at / "else", ctx, tagged)

    def _condition(self, cond: Any, at: At) -> Callable[[Any, Scope], bool]:
        try:
            return compile_condition(cond)
        except ValueError as exc:
            self.issues.append(at.issue(str(exc)))
            return lambda _c, _s: False

    def _sub_mapping(self, ref: str | SpecBody, at: At, ctx: _Ctx, root: Pattern, tagged: bool) -> Node:
        unit = (
            self.resolver.unit_for(ref, at)
            if isinstance(ref, str)
            else Unit.from_body(f"{ctx.unit.name}/{format_path(at.path)}", ref, at, {})
        )
        if unit is None:
            return Node(lambda _c, _s: None)
        sub = self.compile_unit(unit, root=root, personal=ctx.personal, tagged=tagged).fn
        name = unit.name

        def mapping(value: Any, scope: Scope) -> Any:
            if value is None:
                return None
            if not isinstance(value, dict):
                raise MappingFailure(f"mapping {name} expects an object, got {type(value).__name__}")
            inner = Scope(value, scope.params)
            return sub(value, inner)

        return Node(mapping)

    def _post(self, spec: FieldSpec, at: At, ctx: _Ctx, node: Node) -> Node:
        transforms: list[Transform] = []
        if spec.table is not None:
            table = ctx.tables.get(spec.table)
            if table is None:
                self.issues.append((at / "table").issue(_unknown("table", spec.table, ctx.tables)))
            else:
                transforms.append(table.lookup)
        calls = spec.apply if isinstance(spec.apply, list) else [] if spec.apply is None else [spec.apply]
        context = FunctionContext(ctx.tables)
        for i, call in enumerate(calls):
            transform = self._bind(
                call, at, at / "apply" / i if isinstance(spec.apply, list) else at / "apply", context
            )
            if transform is not None:
                transforms.append(transform)
        missing = None if spec.each is not None else _missing_fn(spec)
        if not transforms and missing is None:
            return node
        required = spec.required and "default" not in spec.model_fields_set
        if required and not transforms and node.path is not None:
            return replace(node, fn=compile_getter(node.path, required=True))
        return replace(node, fn=_pipeline(node.fn, missing, tuple(transforms), required=required))

    def _bind(self, call: Call, field_at: At, call_at: At, context: FunctionContext) -> Transform | None:
        if isinstance(call, str):
            name, raw = call, None
        elif len(call) == 1:
            ((name, raw),) = call.items()
        else:
            self.issues.append(call_at.issue("a function call is a name, or one name with its arguments"))
            return None
        function = self.functions.get(name)
        if function is None:
            hint = difflib.get_close_matches(name, self.functions.names(), n=1)
            suggestion = (
                f" (did you mean {hint[0]!r}?)" if hint else " (`lienthong mapping functions` lists them)"
            )
            self.issues.append(field_at.issue(f"unknown function {name!r}{suggestion}", line_from=call_at))
            return None
        try:
            return bind(function, raw, context)
        except ValueError as exc:
            self.issues.append(field_at.issue(str(exc), line_from=call_at))
            return None


# -- closures ------------------------------------------------------------------------------------------------


def _missing_fn(spec: FieldSpec) -> Callable[[Any], Any] | None:
    """What a missing value (null or empty text) becomes: the default, an error, or itself."""
    if "default" in spec.model_fields_set:
        fallback = spec.default
        return lambda _value: fallback
    if spec.required:

        def required(_value: Any) -> Any:
            raise MappingFailure("required but missing")

        return required
    return None


def _pipeline(
    get: Getter, missing: Callable[[Any], Any] | None, transforms: tuple[Transform, ...], *, required: bool
) -> Getter:
    # The shapes most fields take get their own closure: one call less per field is measurable.
    if required and len(transforms) <= 1:
        return _required(get, transforms[0] if transforms else None)
    if not transforms and missing is not None:

        def with_default(cur: Any, scope: Scope) -> Any:
            value = get(cur, scope)
            return missing(value) if value is None or value == "" else value

        return with_default
    if missing is None and len(transforms) == 1:
        (only,) = transforms

        def one(cur: Any, scope: Scope) -> Any:
            value = get(cur, scope)
            return value if value is None or value == "" or value is OMIT else only(value)

        return one

    def run(cur: Any, scope: Scope) -> Any:
        value = get(cur, scope)
        if value is None or value == "":
            if missing is None:
                return value
            value = missing(value)
            if value is None or value == "":
                return value  # an empty default is final; a real one (false, 0) is translated too
        elif value is OMIT:
            return value
        for transform in transforms:
            value = transform(value)
        return value

    return run


def _required(get: Getter, transform: Transform | None) -> Getter:
    if transform is None:

        def required(cur: Any, scope: Scope) -> Any:
            value = get(cur, scope)
            if value is None or value == "":
                raise MappingFailure("required but missing")
            return value

        return required

    def required_then(cur: Any, scope: Scope) -> Any:
        value = get(cur, scope)
        if value is None or value == "":
            raise MappingFailure("required but missing")
        return value if value is OMIT else transform(value)

    return required_then


def _object_fn(
    children: tuple[tuple[str, Getter], ...],
    sources: Mapping[str, str | None],
    *,
    drop_none: bool,
    may_omit: bool,
) -> Getter:
    def fail(exc: Exception, key: str) -> MappingFailure:
        # Anything but a MappingFailure is a plugin function's own bug: name it, with the field, rather
        # than crash the dispatcher.
        failure = exc if isinstance(exc, MappingFailure) else MappingFailure(f"{type(exc).__name__}: {exc}")
        return failure.inside_field(key, sources.get(key))

    if not may_omit:

        def build(cur: Any, scope: Scope) -> dict[str, Any]:
            out = {}
            key = ""
            try:
                for key, child in children:
                    out[key] = child(cur, scope)
            except Exception as exc:
                raise fail(exc, key) from None
            return out

        return build

    def build_omitting(cur: Any, scope: Scope) -> dict[str, Any]:
        out = {}
        key = ""
        try:
            for key, child in children:
                value = child(cur, scope)
                if value is not OMIT and not (drop_none and value is None):
                    out[key] = value
        except Exception as exc:
            raise fail(exc, key) from None
        return out

    return build_omitting


def _each_fn(
    get: Getter,
    text: str,
    item: Getter,
    *,
    where: Callable[[Any, Scope], bool] | None,
    missing: Callable[[Any], Any] | None,
    may_omit: bool,
) -> Getter:
    def each(cur: Any, scope: Scope) -> Any:
        items = get(cur, scope)
        if items is None:
            return missing(None) if missing is not None else []
        if not isinstance(items, list):
            raise MappingFailure(f"expected a list, got {type(items).__name__}", source=text)
        out: list[Any] = []
        saved, index = scope.index, 0
        try:
            for index, value in enumerate(items):  # noqa: B007 (the except clause reads index)
                scope.index = len(out)
                if where is not None and not where(value, scope):
                    continue
                result = item(value, scope)
                if not (may_omit and result is OMIT):
                    out.append(result)
        except MappingFailure as exc:
            raise exc.inside_item(index, text) from None
        finally:
            scope.index = saved
        return out

    return each


def _overlaps(source: Pattern, personal: Pattern) -> bool:
    """Whether copying ``source`` copies some of ``personal``: one lies inside the other."""
    shorter = min(len(source), len(personal))
    return source[:shorter] == personal[:shorter]


def _unknown(kind: str, name: str, known: Mapping[str, Any]) -> str:
    hint = difflib.get_close_matches(name, list(known), n=1)
    listed = ", ".join(sorted(known)) or "none"
    return f"unknown {kind} {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else f" (known: {listed})")
