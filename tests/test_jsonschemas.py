"""The JSON Schemas editors read: every property described, an $id, function names as an enum, the
shipped files in step with the code, and the modelines that point editors at them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lienthong.config import Config
from lienthong.jsonschemas import (
    CONFIG_FILE,
    CONFIG_ID,
    SPEC_FILE,
    SPEC_ID,
    config_schema,
    render,
    spec_schema,
    undescribed,
)
from lienthong.mappings import FunctionRegistry, Spec, bundled_dir

ROOT = Path(__file__).parent.parent
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.MULTILINE)


def test_every_property_of_the_config_and_of_specs_has_a_description() -> None:
    assert undescribed(Config.model_json_schema()) == []
    assert undescribed(Spec.model_json_schema(by_alias=True)) == []


def test_the_schemas_have_an_id_and_describe_a_section_by_its_model() -> None:
    config, spec = config_schema(), spec_schema()
    assert (config["$id"], spec["$id"]) == (CONFIG_ID, SPEC_ID)
    assert (config["title"], spec["title"]) == ("lienthong configuration", "lienthong mapping spec")
    assert config["properties"]["dispatcher"]["description"].startswith("Delivery of stored messages")


def test_function_names_are_an_enum_an_editor_completes() -> None:
    registry = FunctionRegistry.builtin()
    apply = spec_schema(registry)["$defs"]["FieldSpec"]["properties"]["apply"]
    by_name, with_args = apply["anyOf"][1], apply["anyOf"][2]
    assert by_name["enum"] == registry.names()
    assert with_args["propertyNames"]["enum"] == registry.names()
    assert "format_date" in registry.names()
    assert apply["anyOf"][0]["items"]["anyOf"] == [by_name, with_args]


def test_the_shipped_schema_files_are_what_the_code_makes() -> None:
    # Out of step? Run `python -m lienthong.jsonschemas`.
    assert CONFIG_FILE.read_text(encoding="utf-8") == render(config_schema())
    assert SPEC_FILE.read_text(encoding="utf-8") == render(spec_schema())


def test_the_example_config_and_every_bundled_spec_name_their_schema_in_a_modeline() -> None:
    files = [ROOT / "examples" / "lienthong.yaml", *sorted(bundled_dir().glob("*.yaml"))]
    assert len(files) > 5
    for path in files:
        found = MODELINE.search(path.read_text(encoding="utf-8"))
        assert found is not None, f"{path.name} has no yaml-language-server modeline"
        target = (path.parent / found.group(1)).resolve()
        expected = CONFIG_FILE if path.parent.name == "examples" else SPEC_FILE
        assert target == expected.resolve(), path.name
        assert json.loads(target.read_text(encoding="utf-8"))["$id"]
