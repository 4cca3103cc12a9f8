"""Declarative mappings: YAML specs compiled once into callables (see the README's mapping guide)."""

from lienthong.mappings.compiler import OMIT
from lienthong.mappings.functions import Args, Function, FunctionContext, FunctionRegistry, NoArgs
from lienthong.mappings.loader import BUNDLED_PREFIX, CompiledMapping, SpecLoader, bundled_dir, document_hash
from lienthong.mappings.spec import Spec

__all__ = [
    "BUNDLED_PREFIX",
    "OMIT",
    "Args",
    "CompiledMapping",
    "Function",
    "FunctionContext",
    "FunctionRegistry",
    "NoArgs",
    "Spec",
    "SpecLoader",
    "bundled_dir",
    "document_hash",
]
