"""Field paths: how a mapping names a value in its input, compiled once into a getter.

Grammar (documented in the README's mapping guide)::

    dossier.applicant.full_name     keys, relative to the current scope (the record, or a list item)
    dossier.documents[0].url        an index
    dossier.fees[*].amount          every item of a list: the result is a list
    $.dossier.code                  from the record's root, even inside ``each``
    @                               the current scope itself (an item of a list of scalars)
    $index, $position               the current item's index in ``each``: from 0, and from 1

A missing key or a null on the way yields None. Stepping into something that is not an object (or not a
list, for an index) is an error naming the path: a mapping should not silently read through bad input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lienthong.mappings.failure import MappingFailure

_SEGMENT = re.compile(r"(?P<key>[^.\[\]]+)?(?P<index>(\[(?:\d+|\*)\])*)")
_INDEX = re.compile(r"\[(\d+|\*)\]")

Step = str | int | None
"""A key (str), a list index (int), or every item of a list (None)."""

Getter = Callable[[Any, "Scope"], Any]


class Scope:
    """What a getter can see besides the current value: the record's root, params, the item index."""

    __slots__ = ("index", "params", "root")

    def __init__(self, root: Any, params: dict[str, Any]) -> None:
        self.root = root
        self.params = params
        self.index = -1


@dataclass(frozen=True)
class Path:
    """A parsed path. ``text`` is how the integrator wrote it; ``steps`` what it does."""

    text: str
    steps: tuple[Step, ...]
    absolute: bool = False
    special: str | None = None  # "index" or "position"

    @property
    def pattern(self) -> tuple[str, ...]:
        """The keys the path reads, with every index written ``*``: what personal-data tags match."""
        return tuple("*" if not isinstance(s, str) else s for s in self.steps)


def parse_path(text: str) -> Path:
    """Parse ``text``; raise ValueError with a hint when it is not a path."""
    if text in ("$index", "$position"):
        return Path(text, (), special=text[1:])
    if text == "@":
        return Path(text, ())
    body, absolute = (text[2:], True) if text.startswith("$.") else (text, False)
    if text == "$":
        return Path(text, (), absolute=True)
    if not body or body.startswith(("$", ".")) or body.endswith(".") or ".." in body or " " in body.strip():
        raise ValueError(f"not a path: {text!r} (write keys joined by dots, e.g. dossier.applicant.kind)")
    steps: list[Step] = []
    for segment in body.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None or not (match.group("key") or match.group("index")):
            raise ValueError(f"not a path: {text!r} (bad part {segment!r})")
        if match.group("key"):
            steps.append(match.group("key"))
        steps.extend(None if i == "*" else int(i) for i in _INDEX.findall(match.group("index")))
    return Path(text, tuple(steps), absolute=absolute)


def compile_getter(path: Path, *, required: bool = False) -> Getter:
    """A getter ``(current, scope) -> value`` for ``path``, specialised for the common short forms.

    ``required``: a missing value (null or empty text) raises "required but missing"; checked inside the
    getter because a field is most often a required path, and a call less per field is measurable.
    """
    steps = path.steps
    if (
        not path.absolute
        and path.special is None
        and 0 < len(steps) <= 3
        and all(isinstance(s, str) for s in steps)
    ):
        return _keys_getter(path.text, steps, required)  # type: ignore[arg-type]
    get = _general_getter(path)
    if not required:
        return get

    def checked(cur: Any, scope: Scope) -> Any:
        value = get(cur, scope)
        if value is None or value == "":
            raise MappingFailure("required but missing")
        return value

    return checked


def _general_getter(path: Path) -> Getter:
    if path.special == "index":
        return lambda _cur, scope: scope.index
    if path.special == "position":
        return lambda _cur, scope: scope.index + 1
    steps, text = path.steps, path.text
    if not steps:
        return (lambda _cur, scope: scope.root) if path.absolute else (lambda cur, _scope: cur)
    if path.absolute:
        return lambda _cur, scope: _walk(scope.root, steps, 0, text)
    return lambda cur, _scope: _walk(cur, steps, 0, text)


def _keys_getter(text: str, keys: tuple[str, ...], required: bool) -> Getter:
    # The common case, unrolled: dict.get raises AttributeError on anything but a mapping, which costs
    # nothing until it happens, and then we tell None (missing) from a wrong type.
    def bad(value: Any, depth: int) -> None:
        if value is not None:
            where = ".".join(keys[:depth]) or "the input"
            raise MappingFailure(f"expected an object at {where}, got {_kind(value)}", source=text)
        if required:
            raise MappingFailure("required but missing")

    if len(keys) == 1:
        (a,) = keys

        def one(value: Any, _scope: Scope) -> Any:
            try:
                result = value.get(a)
            except AttributeError:
                return bad(value, 0)
            if required and (result is None or result == ""):
                raise MappingFailure("required but missing")
            return result

        return one
    if len(keys) == 2:
        a, b = keys

        def two(value: Any, _scope: Scope) -> Any:
            try:
                first = value.get(a)
            except AttributeError:
                return bad(value, 0)
            try:
                result = first.get(b)
            except AttributeError:
                return bad(first, 1)
            if required and (result is None or result == ""):
                raise MappingFailure("required but missing")
            return result

        return two
    a, b, c = keys

    def three(value: Any, _scope: Scope) -> Any:
        try:
            first = value.get(a)
        except AttributeError:
            return bad(value, 0)
        try:
            second = first.get(b)
        except AttributeError:
            return bad(first, 1)
        try:
            result = second.get(c)
        except AttributeError:
            return bad(second, 2)
        if required and (result is None or result == ""):
            raise MappingFailure("required but missing")
        return result

    return three


def _walk(value: Any, steps: tuple[Step, ...], start: int, text: str) -> Any:
    for depth in range(start, len(steps)):
        if value is None:
            return None
        step = steps[depth]
        if isinstance(step, str):
            if not isinstance(value, dict):
                raise MappingFailure(f"expected an object before {step!r}, got {_kind(value)}", source=text)
            value = value.get(step)
        elif not isinstance(value, list):
            raise MappingFailure(f"expected a list before [{'*' if step is None else step}]", source=text)
        elif step is None:
            rest = [_walk(item, steps, depth + 1, text) for item in value]
            return [
                v
                for item in rest
                for v in (item if isinstance(item, list) and _fans_out(steps, depth) else [item])
            ]
        else:
            value = value[step] if -len(value) <= step < len(value) else None
    return value


def _fans_out(steps: tuple[Step, ...], depth: int) -> bool:
    """Whether a second ``[*]`` follows: then the nested lists are flattened into one."""
    return any(s is None for s in steps[depth + 1 :])


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
