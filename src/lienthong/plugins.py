"""Installed plugins: the entry points of other packages, loaded one at a time.

An entry point that does not import (a package half installed, a typo in its ``entry_points.txt``, a
module that raises) is named in a ``ConfigIssue`` instead of ending the command in a traceback:
``lienthong about`` lists such problems beside what did load, and every other command refuses to start
with them (``FunctionRegistry.with_plugins``, ``JobRegistry.with_plugins``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lienthong.errors import ConfigIssue


def describe(entry: Any) -> str:
    """``entry point "NAME = module:object" (group G, package P)``: what an integrator looks for in the
    package's ``entry_points.txt``."""
    value = getattr(entry, "value", None)
    declared = f"{entry.name} = {value}" if value else str(entry.name)
    where = [f"group {group}"] if (group := getattr(entry, "group", None)) else []
    dist = getattr(entry, "dist", None)
    if dist is not None and getattr(dist, "name", None):
        where.append(f"package {dist.name}")
    return f'entry point "{declared}"' + (f" ({', '.join(where)})" if where else "")


def issue(entry: Any, message: str) -> ConfigIssue:
    """A problem of the plugin behind ``entry``, named so it can be fixed or uninstalled."""
    return ConfigIssue(path="", message=f"plugin {describe(entry)}: {message}")


def load_all(entries: Iterable[Any]) -> tuple[list[tuple[Any, object]], list[ConfigIssue]]:
    """Each entry point with the object it loads, and an issue for each one that does not load."""
    loaded: list[tuple[Any, object]] = []
    issues: list[ConfigIssue] = []
    for entry in entries:
        try:
            loaded.append((entry, entry.load()))
        except Exception as exc:  # importing another package's module may raise anything
            issues.append(issue(entry, f"does not load: {type(exc).__name__}: {exc}"))
    return loaded, issues
