"""The JSON Schemas editors use for the config file and mapping specs: help on hover, completion, checks.

Pydantic writes the schemas; this module makes them editor-ready: an ``$id``, a description on every
property (a section's is its model's docstring), and, in specs, the function names as an enum, so an
editor completes ``apply:`` and flags a misspelt function. The schemas are also shipped as files
(``lienthong/schemas/``), which the example config and the bundled specs name in their
``yaml-language-server`` modeline; a test keeps the files in step with the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lienthong.mappings import FunctionRegistry

SCHEMA_DIR = Path(__file__).parent / "schemas"
CONFIG_FILE = SCHEMA_DIR / "config.schema.json"
SPEC_FILE = SCHEMA_DIR / "mapping-spec.schema.json"
CONFIG_ID = "urn:lienthong:schema:config"
SPEC_ID = "urn:lienthong:schema:mapping-spec"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def editor_ready(schema: dict[str, Any], *, schema_id: str, title: str) -> dict[str, Any]:
    """``schema`` with its ``$id`` and title, and a description on every property that lacks one."""
    _describe(schema, [])
    return {"$schema": DRAFT, "$id": schema_id, **schema, "title": title}


def undescribed(schema: dict[str, Any]) -> list[str]:
    """The properties of a pydantic schema that neither they nor what they refer to describe."""
    missing: list[str] = []
    _describe(schema, missing)
    return missing


def _describe(schema: dict[str, Any], missing: list[str]) -> None:
    definitions = schema.get("$defs", {})

    def description_of(node: dict[str, Any]) -> str | None:
        """What a property's schema says of itself: its own description, its ``$ref``'s, or, for a
        choice of several (a discriminated union), theirs."""
        if "description" in node:
            return str(node["description"])
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = definitions.get(ref.rsplit("/", 1)[-1], {})
            return str(target["description"]) if "description" in target else None
        for key in ("anyOf", "oneOf", "allOf"):
            choices = [description_of(choice) for choice in node.get(key, []) if isinstance(choice, dict)]
            said = [c for c in choices if c]
            if said:
                return " Or: ".join(dict.fromkeys(said))
        if "const" in node:
            return f"Always {node['const']!r}."
        if "discriminator" in node and "mapping" in node["discriminator"]:
            return "One of: " + ", ".join(node["discriminator"]["mapping"])
        return None

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if isinstance(prop, dict) and "description" not in prop:
                    said = description_of(prop)
                    if said is None:
                        missing.append(f"{where}.{name}")
                        said = name.replace("_", " ").capitalize() + "."  # the last resort
                    prop["description"] = said
            for key, value in node.items():
                walk(value, str(node.get("title", key)))
        elif isinstance(node, list):
            for value in node:
                walk(value, where)

    walk(schema, "")


def config_schema() -> dict[str, Any]:
    from lienthong.config import Config  # noqa: PLC0415 (config imports this module)

    return editor_ready(Config.model_json_schema(), schema_id=CONFIG_ID, title="lienthong configuration")


def spec_schema(registry: FunctionRegistry | None = None) -> dict[str, Any]:
    """The mapping spec's schema, its function names those of ``registry`` (default: the built-ins)."""
    from lienthong.mappings import FunctionRegistry, Spec  # noqa: PLC0415

    names = (registry or FunctionRegistry.builtin()).names()
    schema = Spec.model_json_schema(by_alias=True)
    call = {
        "anyOf": [
            {"enum": names, "description": "A function without arguments, by name."},
            {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "propertyNames": {"enum": names},
                "description": "A function with its arguments: {name: arguments}.",
            },
        ]
    }
    apply = schema["$defs"]["FieldSpec"]["properties"]["apply"]
    apply["anyOf"] = [{"type": "array", "items": call}, *call["anyOf"], {"type": "null"}]
    return editor_ready(schema, schema_id=SPEC_ID, title="lienthong mapping spec")


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_files() -> list[Path]:
    """Write the shipped schema files; the paths written."""
    SCHEMA_DIR.mkdir(exist_ok=True)
    CONFIG_FILE.write_text(render(config_schema()), encoding="utf-8")
    SPEC_FILE.write_text(render(spec_schema()), encoding="utf-8")
    return [CONFIG_FILE, SPEC_FILE]


if __name__ == "__main__":  # python -m lienthong.jsonschemas: the shipped files written again
    for path in write_files():
        print(path.name)
