"""Partial expectations for a golden case: ``NAME.assert.yaml``, beside or instead of the whole expected file.

A whole ``NAME.expected.json`` breaks on every unrelated change to a spec; an assert file says only what
the case is about. It holds either ``output:``, a list of checks on what the spec produces, or ``error:``,
text the error of a refused record must contain::

    # golden/portal_dossier/received.assert.yaml
    output:
      - {path: MaHoSo, equals: "000.21.32.H56-261123-00000"}
      - {path: TrangThai, equals: "1"}                      # "1" is text; 1 would be a number
      - {path: "TaiLieuNop[*].TenTepDinhKem", contains: Đơn đề nghị}
      - {path: NgayHenTra, matches: '^\\d{14}$'}
      - {path: SoBienNhan, exists: false}                   # missing or null
      - {contains: {MaHoSo: "000.21.32.H56-261123-00000"}}  # no path: the whole output

    # golden/portal_dossier/error-unknown-status.assert.yaml
    error: "unknown code"

Each check names a ``path`` into the output (the mapping's paths: ``a.b``, ``a[0]``, ``a[*].b``; without a
path, the whole output; for XML output, the document before it is written, ``@attr`` keys included) and
one test:

- ``equals``: the same JSON value (text "1" is not the number 1, true is not 1);
- ``contains``: text holding this text, a list holding this item, or an object holding these keys with
  these values (recursively: a partial object);
- ``matches``: text a regular expression (Python syntax) finds something in;
- ``exists``: true, the value is there and not null; false, it is missing or null.

``--update`` never writes or changes an assert file: a failing check stops the update of its case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lienthong._yaml import LocatedDocument, format_path, load_located
from lienthong.errors import ConfigError, ConfigIssue
from lienthong.mappings.conditions import json_equal
from lienthong.mappings.failure import MappingFailure
from lienthong.mappings.paths import Getter, Scope, compile_getter, parse_path

TESTS = ("equals", "contains", "matches", "exists")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputCheck(_Model):
    """One check on a case's output: a path and one test."""

    path: str | None = Field(default=None, description="Where in the output; none: the whole output.")
    equals: Any = Field(default=None, description="The same JSON value.")
    contains: Any = Field(default=None, description="Text in text, an item in a list, keys in an object.")
    matches: str | None = Field(default=None, description="A regular expression the text matches.")
    exists: bool | None = Field(default=None, description="true: there and not null; false: missing or null.")

    @model_validator(mode="after")
    def _one_test(self) -> OutputCheck:
        given = [t for t in TESTS if t in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one test: {', '.join(TESTS)}" + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class Expectations(_Model):
    """An assert file: checks on the output, or text the error must contain."""

    output: list[OutputCheck] | None = Field(default=None, min_length=1)
    error: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Expectations:
        if (self.output is None) == (self.error is None):
            raise ValueError(
                "give either output (checks on what the spec produces) or error (text the error contains)"
            )
        return self


@dataclass(frozen=True)
class AssertFile:
    """A loaded assert file, with the line of each check for messages."""

    path: Path
    expectations: Expectations
    doc: LocatedDocument
    _getters: tuple[Getter, ...]
    _patterns: tuple[re.Pattern[str] | None, ...]

    @property
    def expects_output(self) -> bool:
        return self.expectations.output is not None

    def check_output(self, output: Any) -> list[str]:
        """What does not hold on ``output`` (a mapping's result), one line each; empty when all hold."""
        value = _as_json(output)
        checks = self.expectations.output or []
        return [
            problem for i, check in enumerate(checks) if (problem := self._check(i, check, value)) is not None
        ]

    def check_error(self, message: str) -> list[str]:
        wanted = self.expectations.error
        if wanted is None or wanted in message:
            return []
        return [
            f"{self._where(('error',))}: the error should contain {_show(wanted)}, but is {_show(message)}"
        ]

    def _check(self, i: int, check: OutputCheck, output: Any) -> str | None:
        where = self._where(("output", i))
        what = check.path or "the output"
        try:
            actual = self._getters[i](output, Scope(output, {}))
        except MappingFailure as exc:
            return f"{where}: cannot read {what}: {exc.message}"
        if "equals" in check.model_fields_set:
            ok, wanted = json_equal(actual, check.equals), f"equal {_show(check.equals)}"
        elif "contains" in check.model_fields_set:
            ok, wanted = _contains(actual, check.contains), f"contain {_show(check.contains)}"
        elif "matches" in check.model_fields_set:
            pattern = self._patterns[i]
            ok = isinstance(actual, str) and pattern is not None and pattern.search(actual) is not None
            wanted = f"match {_show(check.matches)}"
        else:
            ok = (actual is not None) is check.exists
            wanted = "exist" if check.exists else "be missing or null"
        return None if ok else f"{where}: {what} should {wanted}, but is {_show(actual)}"

    def _where(self, path: tuple[str | int, ...]) -> str:
        line = self.doc.line_of(path)
        return f"{self.path.name}{f':{line}' if line else ''} {format_path(path)}"


def load_assert_file(path: Path) -> AssertFile:
    """Read and check an assert file. Raises ConfigError naming the line of each problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError.single(path.name, f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError.single(
            path.name, f"cannot read: not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from exc
    doc = load_located(text, path.name)
    try:
        expectations = Expectations.model_validate(doc.data)
    except ValidationError as exc:
        issues = [_issue(doc, err) for err in exc.errors(include_url=False)]
        raise ConfigError(issues) from exc
    getters: list[Getter] = []
    patterns: list[re.Pattern[str] | None] = []
    issues = []
    for i, check in enumerate(expectations.output or []):
        try:
            getters.append(compile_getter(parse_path(check.path or "$")))
            patterns.append(re.compile(check.matches) if check.matches is not None else None)
        except (ValueError, re.error) as exc:
            issues.append(doc.issue(("output", i), str(exc)))
    if issues:
        raise ConfigError(issues)
    return AssertFile(path, expectations, doc, tuple(getters), tuple(patterns))


def _issue(doc: LocatedDocument, err: Any) -> ConfigIssue:
    loc = tuple(err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        tests = ", ".join(TESTS)
        message = f"unknown key (an assert file has output or error; a check, a path and one of {tests})"
    return doc.issue(loc, message)


def _as_json(value: Any) -> Any:
    """The output as the JSON a check compares with: dates as ISO text, decimals as numbers."""
    return orjson.loads(orjson.dumps(value, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _holds(actual: Any, expected: Any) -> bool:
    """``actual`` is ``expected``, or an object with at least its keys, each holding its value."""
    if isinstance(actual, dict) and isinstance(expected, dict):
        return all(k in actual and _holds(actual[k], v) for k, v in expected.items())
    return json_equal(actual, expected)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return any(_holds(item, expected) for item in actual)
    return isinstance(actual, dict) and isinstance(expected, dict) and _holds(actual, expected)


def _show(value: Any) -> str:
    if value is None:
        return "missing (null)"
    return orjson.dumps(value).decode()
