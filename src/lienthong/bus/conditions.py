"""Route conditions (``routes[].deliver[].when``): the mapping specs' condition language, over the event.

A condition reads the event as the province sent it: ``event_id``, ``type``, ``occurred_at`` (in ISO
8601), ``unit_code`` and ``dossier.…``. It is compiled once, when the config loads, and refused there
when it names a path outside the event or can never hold for its route: a test of ``type`` the route's
event type fails, a unit the route's ``units`` leave out, ``in: []``, or two tests on one path under
``all`` that contradict each other. Beyond those, whether a condition can hold is not decidable in
general (a regular expression, a dossier field): those are the golden tests' work.

At delivery planning a path that steps into text or a number reads as missing (the dossier is in the
province's own schema): the condition decides on what it can read and the event is never refused for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lienthong.mappings.conditions import compile_condition
from lienthong.mappings.paths import Scope, parse_path
from lienthong.mappings.spec import Condition

EventTest = Callable[[Mapping[str, Any]], bool]
"""A compiled route condition: does the event (as a mapping of the envelope's keys) take the route."""

SCALARS = ("event_id", "type", "occurred_at", "unit_code")
"""The envelope's text fields: always present and not empty (the envelope is validated first)."""
ENVELOPE = (*SCALARS, "dossier")
_TESTS = ("equals", "in_", "exists", "empty", "contains", "matches")


@dataclass(frozen=True)
class RouteFacts:
    """What the config already says about the events a route's delivery sees."""

    event_type: str
    units: frozenset[str] | None = None
    except_units: frozenset[str] = frozenset()

    def known(self, key: str) -> Iterable[str] | None:
        """The values ``key`` can take, when the route fixes them."""
        if key == "type":
            return (self.event_type,)
        if key == "unit_code" and self.units is not None:
            return sorted(self.units)
        return None


def compile_route_condition(condition: Condition, facts: RouteFacts) -> EventTest:
    """The condition as a test on events. Raises ValueError naming the path or saying why it can never
    hold; the config loader reports it at the condition's line."""
    for leaf in _leaves(condition):
        _check_path(leaf.path or "")
    reason = _never(condition, facts)
    if reason is not None:
        raise ValueError(f"can never hold: {reason}")
    predicate = compile_condition(condition, lenient=True)
    no_params: dict[str, Any] = {}

    def test(event: Mapping[str, Any]) -> bool:
        return predicate(event, Scope(event, no_params))

    return test


def _leaves(condition: Condition) -> Iterable[Condition]:
    for group in (condition.all, condition.any):
        for child in group or ():
            yield from _leaves(child)
    if condition.not_ is not None:
        yield from _leaves(condition.not_)
    if condition.path is not None:
        yield condition


def _check_path(text: str) -> None:
    path = parse_path(text)  # ValueError for what is not a path at all
    if path.special is not None or not path.steps or not isinstance(path.steps[0], str):
        raise ValueError(f"path {text!r}: a route condition reads the event's keys ({', '.join(ENVELOPE)})")
    first = path.steps[0]
    if first not in ENVELOPE:
        raise ValueError(f"unknown path {text!r}: an event has {', '.join(ENVELOPE)}")
    if first in SCALARS and len(path.steps) > 1:
        raise ValueError(f"unknown path {text!r}: {first} is text, with nothing inside it")


def _key(condition: Condition) -> tuple[str | int | None, ...]:
    return parse_path(condition.path or "").steps


def _test_name(condition: Condition) -> str:
    return next(t for t in _TESTS if t in condition.model_fields_set)


def _never(condition: Condition, facts: RouteFacts) -> str | None:
    """Why ``condition`` cannot hold for any event of the route, when that can be seen; else None."""
    if condition.all is not None:
        for child in condition.all:
            reason = _never(child, facts)
            if reason is not None:
                return reason
        return _contradiction([c for c in condition.all if c.path is not None])
    if condition.any is not None:
        if not condition.any:
            return "any: [] (none of no conditions holds)"
        reasons = [_never(child, facts) for child in condition.any]
        if reasons and all(reasons):
            return "; ".join(r for r in reasons if r)
        return None
    if condition.not_ is not None:
        return _always(condition.not_, facts)
    return _leaf_never(condition, facts)


def _leaf_never(leaf: Condition, facts: RouteFacts) -> str | None:
    path, test = leaf.path or "", _test_name(leaf)
    if test == "in_" and not leaf.in_:
        return f"{path} in [] (an empty list)"
    steps = _key(leaf)
    if None in steps and _tests_one_value(leaf, test):
        return f"{path} reads a list (its [*]): test it with contains, or name one item ([0])"
    if len(steps) != 1 or steps[0] not in SCALARS:
        return None
    key = str(steps[0])
    if (test == "exists" and leaf.exists is False) or (test == "empty" and leaf.empty is True):
        return f"{path} is always there and never empty"
    if test == "contains":
        return f"{path} is text, not a list"
    predicate = compile_condition(leaf)
    values = facts.known(key)
    if values is not None and not any(predicate({key: v}, Scope({}, {})) for v in values):
        return f"the route's {key} is {' or '.join(values)}"
    if key == "unit_code" and facts.except_units and test in ("equals", "in_"):
        wanted = {leaf.equals} if test == "equals" else set(leaf.in_ or [])
        if wanted and wanted <= facts.except_units:
            return f"{path}: {', '.join(sorted(map(str, wanted)))} left out by except_units"
    return None


def _tests_one_value(leaf: Condition, test: str) -> bool:
    """Whether the test can only hold for a single value, never for the list a ``[*]`` path reads."""
    if test == "matches":
        return True
    if test == "equals":
        return not isinstance(leaf.equals, list)
    if test == "in_":
        return not any(isinstance(option, list) for option in leaf.in_ or [])
    return False


def _always(condition: Condition, facts: RouteFacts) -> str | None:
    """Why ``condition`` holds for every event of the route (so ``not`` of it never does), when plain."""
    if condition.path is None:
        return None
    steps, test = _key(condition), _test_name(condition)
    if len(steps) != 1 or steps[0] not in SCALARS:
        return None
    key = str(steps[0])
    if (test == "exists" and condition.exists is True) or (test == "empty" and condition.empty is False):
        return f"not: {condition.path} is always there"
    values = facts.known(key)
    predicate = compile_condition(condition)
    if values is not None and all(predicate({key: v}, Scope({}, {})) for v in values):
        return f"not: the route's {key} is always {' or '.join(values)}"
    return None


def _contradiction(leaves: list[Condition]) -> str | None:
    """Two tests on one path under ``all`` that no value passes together."""
    by_path: dict[tuple[str | int | None, ...], list[Condition]] = {}
    for leaf in leaves:
        by_path.setdefault(_key(leaf), []).append(leaf)
    for tests in by_path.values():
        allowed: list[Any] | None = None
        present: set[bool] = set()
        for leaf in tests:
            name = _test_name(leaf)
            if name == "equals":
                options = [leaf.equals]
            elif name == "in_":
                options = list(leaf.in_ or [])
            else:
                if name == "exists":
                    present.add(bool(leaf.exists))
                continue
            allowed = options if allowed is None else [o for o in allowed if o in options]
            if not allowed:
                return f"{leaf.path}: no value passes all its tests"
        if len(present) == 2:
            return f"{tests[0].path} must both exist and not exist"
    return None
