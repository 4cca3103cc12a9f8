"""Routes on content (``routes[].deliver[].when``): refused at load when they cannot work, and deciding
which deliveries an event makes when they can."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import ROUTES, Peers, RunNode, config_dict
from lienthong.app import build_routes
from lienthong.config import parse_config
from lienthong.errors import ConfigError
from lienthong.mappings import SpecLoader
from lienthong.sandbox.dossiers import generate


def routes_with(when: Any, *, on: str = "dossier.received", **rule: Any) -> list[dict[str, Any]]:
    return [
        {"on": on, "deliver": [{"to": "portal", "operation": "DongBoHoSoMC", "when": when, **rule}]},
        *ROUTES[1:],
    ]


def problems(tmp_path: Path, peers: Peers, routes: list[dict[str, Any]]) -> list[str]:
    """Every problem `lienthong check` reports for a config with ``routes``, as text."""
    text = json.dumps(config_dict(tmp_path, peers, routes=routes), indent=1)  # JSON is YAML, a key a line
    try:
        config = parse_config(text, file="lienthong.yaml", env={})
        build_routes(config, SpecLoader())
    except ConfigError as exc:
        return [str(issue) for issue in exc.issues]
    return []


@pytest.mark.parametrize(
    ("when", "said"),
    [
        ({"path": "dosier.procedure.code", "equals": "X"}, "unknown path 'dosier.procedure.code'"),
        ({"path": "type.name", "equals": "X"}, "type is text, with nothing inside it"),
        ({"path": "$index", "equals": 1}, "reads the event's keys"),
        (
            {"path": "type", "equals": "dossier.returned"},
            "can never hold: the route's type is dossier.received",
        ),
        ({"path": "dossier.channel", "in": []}, "can never hold: dossier.channel in []"),
        ({"path": "unit_code", "exists": False}, "can never hold: unit_code is always there"),
        ({"path": "unit_code", "contains": "H56"}, "can never hold: unit_code is text, not a list"),
        (
            {"all": [{"path": "dossier.channel", "equals": 1}, {"path": "dossier.channel", "in": [2, 3]}]},
            "can never hold: dossier.channel: no value passes all its tests",
        ),
        (
            {"all": [{"path": "dossier.fees", "exists": True}, {"path": "dossier.fees", "exists": False}]},
            "can never hold: dossier.fees must both exist and not exist",
        ),
        (
            {"any": [{"path": "type", "equals": "payment.confirmed"}, {"path": "dossier.x", "in": []}]},
            "can never hold: the route's type is dossier.received; dossier.x in []",
        ),
        (
            {"not": {"path": "type", "matches": "^dossier\\."}},
            "can never hold: not: the route's type is always",
        ),
    ],
)
def test_a_condition_outside_the_event_or_that_can_never_hold_is_a_load_error_at_its_line(
    tmp_path: Path, peers: Peers, when: dict[str, Any], said: str
) -> None:
    (problem,) = problems(tmp_path, peers, routes_with(when))
    assert problem.startswith("lienthong.yaml:")
    assert "routes[0].deliver[0].when" in problem
    assert said in problem


def test_a_condition_that_contradicts_the_routes_units_can_never_hold(tmp_path: Path, peers: Peers) -> None:
    only = routes_with({"path": "unit_code", "equals": "B"}, units=["A"])
    (problem,) = problems(tmp_path, peers, only)
    assert "can never hold: the route's unit_code is A" in problem
    left_out = routes_with({"path": "unit_code", "in": ["B", "C"]}, except_units=["B", "C"])
    (problem,) = problems(tmp_path, peers, left_out)
    assert "B, C left out by except_units" in problem


def test_a_condition_without_a_test_is_named_with_what_to_write(tmp_path: Path, peers: Peers) -> None:
    (problem,) = problems(tmp_path, peers, routes_with({"path": "dossier.channel"}))
    assert "routes[0].deliver[0].when" in problem
    assert "give a path and exactly one test" in problem


def test_conditions_that_can_hold_load(tmp_path: Path, peers: Peers) -> None:
    for when in (
        {"path": "dossier.procedure.field_code", "in": ["G05"]},
        {"path": "type", "equals": "dossier.received"},
        {"any": [{"path": "unit_code", "equals": "A"}, {"path": "dossier.channel", "equals": 2}]},
        {"not": {"path": "dossier.channel", "equals": 1}},
        {"path": "$.dossier.applicant.kind", "exists": True},
    ):
        assert problems(tmp_path, peers, routes_with(when)) == [], when


def test_every_problem_of_the_routes_is_listed_in_one_pass_with_the_route_of_a_broken_mapping(
    tmp_path: Path, peers: Peers
) -> None:
    (tmp_path / "broken.yaml").write_text("fields:\n  MaHoSo: {from: dossier.code, apply: no_such}\n")
    routes = [
        {
            "on": "dossier.received",
            "deliver": [
                {"to": "portal", "operation": "DongBoHoSoMC", "mapping": str(tmp_path / "broken.yaml")},
                {"to": "emc", "operation": "TrackingMCDT", "when": {"path": "nope", "equals": 1}},
            ],
        }
    ]
    found = problems(tmp_path, peers, routes)
    assert any("broken.yaml:2" in p and "no_such" in p for p in found), found
    assert any("routes[0].deliver[0].mapping" in p and "does not load" in p for p in found), found
    assert any("routes[0].deliver[1].when" in p and "unknown path 'nope'" in p for p in found), found


async def test_only_events_the_condition_holds_for_take_the_delivery(run_node: RunNode, peers: Peers) -> None:
    dossiers = generate(12)
    received = [d.events[0] for d in dossiers]
    field = received[0]["dossier"]["procedure"]["field_code"]
    routes = [
        {
            "on": "dossier.received",
            "deliver": [
                {
                    "to": "portal",
                    "operation": "DongBoHoSoMC",
                    "when": {"path": "dossier.procedure.field_code", "equals": field},
                },
                {"to": "emc", "operation": "TrackingMCDT"},
            ],
        }
    ]
    running = await run_node(routes=routes)
    taken = 0
    for event in received:
        answer = await running.post(event)
        assert answer.status_code == 202, answer.text
        portal_too = event["dossier"]["procedure"]["field_code"] == field
        taken += portal_too
        assert len(answer.json()["message_ids"]) == (2 if portal_too else 1)
    assert 0 < taken < len(received)  # the sample has both kinds
    await running.settle()
    codes = {
        event["dossier"]["code"] for event in received if event["dossier"]["procedure"]["field_code"] == field
    }
    assert set(peers.portal.dossiers) == codes


async def test_a_dossier_of_another_shape_reads_as_missing_and_is_not_refused(
    run_node: RunNode, peers: Peers
) -> None:
    routes = routes_with({"not": {"path": "dossier.procedure.field_code", "exists": True}})
    running = await run_node(routes=routes)
    event = generate(1)[0].events[0]
    event["dossier"]["procedure"] = "a text, not an object"
    answer = await running.post(event)
    assert answer.status_code == 202, answer.text
    assert len(answer.json()["message_ids"]) == 1  # the field reads as missing: `not exists` holds
