"""Conditions (``when``, ``cases``, ``where``) compiled into predicates ``(current, scope) -> bool``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lienthong.mappings.failure import MappingFailure
from lienthong.mappings.paths import Getter, Scope, compile_getter, parse_path
from lienthong.mappings.regex import compile_linear
from lienthong.mappings.spec import Condition

Predicate = Callable[[Any, Scope], bool]


def compile_condition(cond: Condition, *, lenient: bool = False) -> Predicate:
    """Raise ValueError for a bad path or pattern; the compiler reports it with the condition's line.

    ``lenient``: a path that steps into something other than an object or a list reads as missing
    instead of failing (route conditions, over input in another system's schema)."""
    if cond.all is not None:
        parts = [compile_condition(c, lenient=lenient) for c in cond.all]
        return lambda cur, scope: all(p(cur, scope) for p in parts)
    if cond.any is not None:
        parts = [compile_condition(c, lenient=lenient) for c in cond.any]
        return lambda cur, scope: any(p(cur, scope) for p in parts)
    if cond.not_ is not None:
        inner = compile_condition(cond.not_, lenient=lenient)
        return lambda cur, scope: not inner(cur, scope)
    assert cond.path is not None  # the model guarantees a path with one test
    get = compile_getter(parse_path(cond.path))
    return _test(cond, _missing_when_unreadable(get) if lenient else get)


def _missing_when_unreadable(get: Getter) -> Getter:
    def read(current: Any, scope: Scope) -> Any:
        try:
            return get(current, scope)
        except MappingFailure:
            return None

    return read


def _test(cond: Condition, get: Getter) -> Predicate:
    fields = cond.model_fields_set
    if "equals" in fields:
        expected = cond.equals
        return lambda cur, scope: json_equal(get(cur, scope), expected)
    if "in_" in fields:
        options = list(cond.in_ or [])
        return lambda cur, scope: _one_of(get(cur, scope), options)
    if "exists" in fields:
        wanted = bool(cond.exists)
        return lambda cur, scope: (get(cur, scope) is not None) is wanted
    if "empty" in fields:
        wanted = bool(cond.empty)
        return lambda cur, scope: is_empty(get(cur, scope)) is wanted
    if "contains" in fields:
        member = cond.contains
        return lambda cur, scope: _contains(get(cur, scope), member)
    regex = compile_linear(cond.matches or "", what="matches")
    return lambda cur, scope: isinstance(value := get(cur, scope), str) and regex.search(value) is not None


def is_empty(value: Any) -> bool:
    """Missing, null, empty text, or an empty list or object."""
    return value is None or (isinstance(value, str | list | dict) and not value)


def _one_of(value: Any, options: list[Any]) -> bool:
    return any(json_equal(value, option) for option in options)


def _contains(value: Any, member: Any) -> bool:
    return isinstance(value, list) and any(json_equal(item, member) for item in value)


def json_equal(actual: Any, expected: Any) -> bool:
    """JSON equality, as the values read from JSON mean: true is not 1, "1" is not 1 (Python's ``==`` says
    both are)."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(json_equal(actual[k], v) for k, v in expected.items())
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(map(json_equal, actual, expected))
    if isinstance(actual, dict | list) or isinstance(expected, dict | list):
        return False
    return bool(actual == expected)
