"""Loading spec files: YAML with lines, ``extends`` and ``include``, compiling, and the content hash.

``SpecLoader.load(path)`` returns a ``CompiledMapping`` or raises ConfigError listing every problem as
``file:line key: message``. The mapping's ``document`` is the spec with everything it uses resolved into one
JSON value (other files inlined); its SHA-256 is the mapping's ``hash``, which outbox rows record, and
``load_document`` compiles a stored document again so a replay can use the original version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from lienthong._yaml import LocatedDocument, PathKey, load_located
from lienthong.errors import ConfigError, ConfigIssue, MappingError
from lienthong.mappings.compiler import At, Compiler, Unit
from lienthong.mappings.failure import MappingFailure
from lienthong.mappings.functions import FunctionRegistry
from lienthong.mappings.paths import Getter, Scope
from lienthong.mappings.spec import Param, Spec, SpecBody
from lienthong.mappings.xmlout import to_xml

BUNDLED_PREFIX = "bundled:"
_DOCUMENT_FORMAT = 1  # part of the hash: bump when the meaning of a document changes


def bundled_dir() -> Path:
    """The directory of the specs shipped with lienthong (reference provincial format)."""
    return Path(str(resources.files("lienthong.mappings") / "bundled"))


@dataclass(frozen=True)
class CompiledMapping:
    """A loaded spec: call it on a record to get the output document."""

    name: str
    hash: str
    document: dict[str, Any]
    output: str
    xml_root: str | None
    params: Mapping[str, Param]
    _fn: Getter = field(repr=False)
    # The params' defaults, worked out once: a mapping runs per delivery.
    _defaults: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        defaults = {k: p.default for k, p in self.params.items() if "default" in p.model_fields_set}
        object.__setattr__(self, "_defaults", defaults)

    def __call__(
        self, record: Any, *, params: Mapping[str, Any] | None = None, record_id: str | None = None
    ) -> dict[str, Any]:
        """Map one record. Raises MappingError naming the record, the output field and the input path."""
        scope = Scope(record, self.with_defaults(params) if params else self._defaults)
        try:
            result: dict[str, Any] = self._fn(record, scope)
        except MappingFailure as exc:
            raise MappingError(
                exc.message, mapping=self.name, field=exc.field, source=exc.source, record=record_id
            ) from None
        return result

    def with_defaults(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {**self._defaults, **params}

    def missing_params(self, given: Mapping[str, Any]) -> list[str]:
        """Declared, required params that neither ``given`` nor a default supplies."""
        have = self.with_defaults(given)
        return [k for k, p in self.params.items() if p.required and k not in have]

    def render(self, result: dict[str, Any]) -> bytes:
        """The output as bytes: indented JSON, or XML with its declaration."""
        if self.output == "xml":
            assert self.xml_root is not None
            return to_xml(self.xml_root, result)
        return orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n"

    @property
    def short_hash(self) -> str:
        return self.hash[:12]


def document_hash(document: dict[str, Any]) -> str:
    canonical = orjson.dumps({"format": _DOCUMENT_FORMAT, "spec": document}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


class SpecLoader:
    """Loads and compiles spec files, resolving what they use relative to each file."""

    def __init__(self, functions: FunctionRegistry | None = None) -> None:
        self.functions = functions if functions is not None else FunctionRegistry.builtin()
        self._units: dict[Path, Unit] = {}
        self._reading: list[Path] = []
        self._issues: list[ConfigIssue] = []
        # Errors name a spec by its file name; references resolve against the file's real directory.
        self._dirs: dict[int, Path] = {}

    def load(self, path: Path | str) -> CompiledMapping:
        """Load ``path``, or ``bundled:NAME`` for a bundled spec. Raises ConfigError."""
        self._issues = []
        unit = self._unit(_locate(path, None))
        if unit is None:
            raise ConfigError(list(dict.fromkeys(self._issues)))
        return self._compile(unit)

    def load_document(self, document: dict[str, Any], *, name: str) -> CompiledMapping:
        """Compile a stored, resolved document (``CompiledMapping.document``) again."""
        self._issues = []
        doc = LocatedDocument(document, {}, f"{name}@{document_hash(document)[:12]}")
        spec = self._validate(SpecBody, doc)
        if spec is None:
            raise ConfigError(self._issues)
        return self._compile(Unit.from_body(name, spec, At(doc), document))

    def unit_for(self, ref: str, at: At) -> Unit | None:
        """Resolver for ``mapping: other.yaml`` inside a field."""
        return self._unit(self._locate(ref, at), at)

    # -- internals -----------------------------------------------------------------------------------------

    def _compile(self, unit: Unit) -> CompiledMapping:
        compiler = Compiler(self.functions, self)
        node = compiler.compile_unit(unit)
        issues = self._issues + compiler.issues
        if issues:
            raise ConfigError(list(dict.fromkeys(issues)))
        # As JSON stores it: table keys written 1 or true in YAML become "1" and "true", as they compare.
        try:
            document = orjson.loads(orjson.dumps(unit.body, option=orjson.OPT_NON_STR_KEYS))
        except orjson.JSONEncodeError as exc:
            raise ConfigError.single(unit.name, f"holds a value JSON cannot store: {exc}") from exc
        return CompiledMapping(
            name=unit.name,
            hash=document_hash(document),
            document=document,
            output=unit.output,
            xml_root=unit.xml_root,
            params=dict(compiler.params),
            _fn=node.fn,
        )

    def _unit(self, path: Path, at: At | None = None) -> Unit | None:
        path = path.resolve()
        if path in self._units:
            return self._units[path]
        if path in self._reading:
            chain = " → ".join(p.name for p in [*self._reading, path])
            self._report(at, f"spec files use each other in a cycle: {chain}", path)
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            self._report(at, f"cannot read spec {path.name}: {exc.strerror}", path)
            return None
        self._reading.append(path)
        try:
            unit = self._read(text, path)
        finally:
            self._reading.pop()
        if unit is not None:
            self._units[path] = unit
        return unit

    def _read(self, text: str, path: Path) -> Unit | None:
        try:
            doc = load_located(text, path.name)
        except ConfigError as exc:
            self._issues.extend(exc.issues)
            return None
        if doc.data is None:
            doc = LocatedDocument({}, {}, doc.file)
        self._dirs[id(doc)] = path.parent
        spec = self._validate(Spec, doc)
        if spec is None:
            return None
        name = spec.name or path.name.removesuffix(".yaml").removesuffix(".yml")
        base = (
            self._unit(self._locate(spec.extends, At(doc)), At(doc, ("extends",))) if spec.extends else None
        )
        unit = Unit(name=name, body={})
        if base is not None:
            unit = _inherit(base, name)
        for i, ref in enumerate(spec.include):
            included = self._unit(self._locate(ref, At(doc)), At(doc, ("include", i)))
            if included is not None:
                self._include(unit, included, At(doc, ("include", i)))
        own = Unit.from_body(name, spec, At(doc), {})
        unit.params.update(own.params)
        unit.tables.update(own.tables)
        unit.personal.extend(own.personal)
        unit.fields.update(own.fields)
        for key in ("output", "xml_root", "missing"):
            if key in spec.model_fields_set or base is None:
                setattr(unit, key, getattr(spec, key))
        unit.body = self._body(unit, doc, path)
        return unit

    def _include(self, unit: Unit, included: Unit, at: At) -> None:
        if included.fields:
            self._issues.append(
                at.issue(
                    "an included file brings tables, params and personal_sources; use extends for fields"
                )
            )
        unit.params.update(included.params)
        unit.tables.update(included.tables)
        unit.personal.extend(included.personal)

    def _body(self, unit: Unit, doc: LocatedDocument, path: Path) -> dict[str, Any]:
        """The resolved document: every part in plain data, other files inlined."""

        def raw(at: At) -> Any:
            value = at.doc.data
            for key in at.path:
                value = value[key]
            return self._inline(value, at)

        return {
            "output": unit.output,
            "xml_root": unit.xml_root,
            "missing": unit.missing,
            "params": {k: raw(at) for k, (_, at) in unit.params.items()},
            "tables": {k: raw(at) for k, (_, at) in unit.tables.items()},
            "personal_sources": [text for text, _ in unit.personal],
            "fields": {k: raw(at) for k, (_, at) in unit.fields.items()},
        }

    def _inline(self, value: Any, at: At) -> Any:
        if isinstance(value, list):
            return [self._inline(v, at / i) for i, v in enumerate(value)]
        if not isinstance(value, dict):
            return value
        out = {k: self._inline(v, at / k) for k, v in value.items()}
        ref = value.get("mapping")
        if isinstance(ref, str):
            sub = self._unit(self._locate(ref, at), at / "mapping")
            out["mapping"] = sub.body if sub is not None else None
        return out

    def _validate(self, model: type[BaseModel], doc: LocatedDocument) -> Any:
        try:
            return model.model_validate(doc.data)
        except ValidationError as exc:
            self._issues.extend(_issue(doc, err) for err in exc.errors(include_url=False) if _worth(err))
            return None

    def _locate(self, ref: str, at: At) -> Path:
        directory = self._dirs.get(id(at.doc))
        return _locate(ref, str(directory / "_") if directory is not None else None)

    def _report(self, at: At | None, message: str, path: Path) -> None:
        self._issues.append(
            at.issue(message) if at is not None else ConfigIssue(path="", message=message, file=str(path))
        )


def _locate(ref: str | Path, relative_to: str | None) -> Path:
    if isinstance(ref, str) and ref.startswith(BUNDLED_PREFIX):
        return bundled_dir() / f"{ref.removeprefix(BUNDLED_PREFIX)}.yaml"
    path = Path(ref)
    if relative_to is not None and not path.is_absolute():
        return Path(relative_to).parent / path
    return path


def _inherit(base: Unit, name: str) -> Unit:
    return Unit(
        name=name,
        body={},
        output=base.output,
        xml_root=base.xml_root,
        missing=base.missing,
        params=dict(base.params),
        tables=dict(base.tables),
        personal=list(base.personal),
        fields=dict(base.fields),
    )


def _worth(err: Any) -> bool:
    # A field may be written as a path (text) or as an object; when an object fails, pydantic also says
    # "not a valid string" for the text alternative, which only adds noise.
    return not (err["type"] == "string_type" and err["loc"] and err["loc"][-1] == "str")


def _issue(doc: LocatedDocument, err: Any) -> ConfigIssue:
    path = _real_path(doc.data, tuple(err["loc"]))
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key (check its spelling; `lienthong mapping schema` lists the keys)"
    return doc.issue(path, message)


def _real_path(data: Any, loc: PathKey) -> PathKey:
    """pydantic's loc without the names of union members (``FieldSpec``, ``str``) it inserts."""
    out: list[str | int] = []
    for part in loc:
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and part < len(data)
        if in_dict or in_list:
            out.append(part)
            data = data[part]
        elif not isinstance(data, dict) or isinstance(part, int):
            break
        elif str(part)[:1].islower() and "[" not in str(part):
            out.append(part)  # a key that is missing (required) or unknown: name it
            break
    return tuple(out)
