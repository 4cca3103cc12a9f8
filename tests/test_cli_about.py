"""``lienthong about [--json]`` describes the build from the code's own registries."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest

from lienthong import __version__
from lienthong.app import BUILTIN_JOBS
from lienthong.bus.emit import INTERNAL_EVENT_TYPES
from lienthong.bus.envelope import EVENT_TYPES
from lienthong.cli import main
from lienthong.config import DESTINATION_KINDS, Destination
from lienthong.mappings import FunctionRegistry, SpecLoader, bundled_dir


def about_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["about", "--json"]) == 0
    about: dict[str, Any] = json.loads(capsys.readouterr().out)
    return about


def test_it_names_the_build(capsys: pytest.CaptureFixture[str]) -> None:
    about = about_json(capsys)
    assert (about["name"], about["version"]) == ("lienthong", __version__)


def test_destination_kinds_and_operations_are_the_config_s(capsys: pytest.CaptureFixture[str]) -> None:
    about = about_json(capsys)
    models = {get_args(m.model_fields["kind"].annotation)[0]: m for m in get_args(get_args(Destination)[0])}
    assert [d["kind"] for d in about["destinations"]] == sorted(DESTINATION_KINDS) == sorted(models)
    for described in about["destinations"]:
        model = models[described["kind"]]
        assert [o["name"] for o in described["operations"]] == list(model.operations)
        assert {o["name"]: o["default_mapping"] for o in described["operations"]} == {
            op: model.default_mappings.get(op) for op in model.operations
        }
        assert described["description"]
    portal = next(d for d in about["destinations"] if d["kind"] == "portal")
    assert {"name": "DongBoHoSoMC", "default_mapping": "bundled:portal_dossier"} in portal["operations"]


def test_event_types_are_the_envelope_s(capsys: pytest.CaptureFixture[str]) -> None:
    about = about_json(capsys)
    assert [e["type"] for e in about["event_types"]] == list(EVENT_TYPES)
    assert {e["type"] for e in about["event_types"] if e["internal"]} == set(INTERNAL_EVENT_TYPES)


def test_bundled_mappings_are_every_bundled_spec_with_the_loader_s_hash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    about = about_json(capsys)
    loader = SpecLoader(FunctionRegistry.with_plugins())
    specs = sorted(p.stem for p in bundled_dir().glob("*.yaml"))
    assert [m["name"] for m in about["mappings"]] == specs
    for described in about["mappings"]:
        compiled = loader.load(f"bundled:{described['name']}")
        assert described["hash"] == compiled.hash
        assert described["output"] == compiled.output
        assert [p["name"] for p in described["params"]] == list(compiled.params)
    emc = next(m for m in about["mappings"] if m["name"] == "emc_tracking")
    assert emc["default_for"] == ["emc.TrackingMCDT"]
    assert "EMC" in emc["description"]
    assert {p["name"]: p["required"] for p in emc["params"]} == {"site_id": True, "province_code": True}


def test_functions_are_the_registry_s_with_their_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    about = about_json(capsys)
    registry = FunctionRegistry.with_plugins()
    assert [f["name"] for f in about["functions"]] == [f.name for f in registry]
    for described in about["functions"]:
        function = registry.get(described["name"])
        assert function is not None
        assert described["description"] == function.doc
        fields = function.args.model_fields
        assert [a["name"] for a in described["arguments"]] == list(fields)
        for argument in described["arguments"]:
            info = fields[argument["name"]]
            assert argument["description"] == (info.description or "")
            assert argument["required"] == info.is_required()
    pad = next(f for f in about["functions"] if f["name"] == "pad")
    assert [(a["name"], a["required"], a["default"]) for a in pad["arguments"]] == [
        ("width", True, None),
        ("char", False, "0"),
        ("side", False, "left"),
    ]
    assert pad["arguments"][2]["schema"]["enum"] == ["left", "right"]


def test_jobs_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    about = about_json(capsys)
    assert set(BUILTIN_JOBS) <= set(about["jobs"])
    assert about["exit_codes"]["2"].startswith("usage")


def test_without_json_it_is_text_for_a_person(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["about"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"lienthong {__version__}: ")
    for kind in DESTINATION_KINDS:
        assert f"\n  {kind} " in out
    assert "operations: DongBoHoSoMC (bundled:portal_dossier), CapNhatTienDoHoSoMC" in out
    assert "  payment.confirmed *\n" in out
    assert "  pad(width, char='0', side='left')\n" in out
    assert "emc_tracking@" in out
