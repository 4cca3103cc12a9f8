"""Each subpackage's public names are importable and listed on purpose (httpx's test_exported_members)."""

from __future__ import annotations

import importlib
import inspect

import pytest

PACKAGES = [
    "lienthong.adapters",
    "lienthong.api",
    "lienthong.bus",
    "lienthong.observability",
    "lienthong.sandbox",
    "lienthong.scheduler",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_the_exported_names_are_exactly_what_the_package_imports(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(set(exported)) == len(exported)
    assert [s for s in exported if not hasattr(module, s)] == []
    imported = {n for n, v in vars(module).items() if not n.startswith("_") and not inspect.ismodule(v)}
    assert imported == set(exported)
