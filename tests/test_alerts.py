"""deploy/prometheus/alerts.yml: valid, unit-tested rule by rule, each with its runbook, and watching only
metrics lienthong really exports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from lienthong.app import build
from lienthong.config import Config

DEPLOY = Path(__file__).parent.parent / "deploy" / "prometheus"
ALERTS = DEPLOY / "alerts.yml"
RUNBOOK = Path(__file__).parent.parent / "docs" / "runbook.md"
PLANNED: set[str] = set()
"""Metrics the rules or the dashboard may name before the node exports them (none today)."""
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}


def exported_names() -> set[str]:
    """Every sample name a node's /metrics can hold: its registry's families after building a node, each
    with the suffixes of its type (a labelled family has no sample until it is used)."""
    registry = CollectorRegistry()
    node = build(Config.model_validate({"store": {"kind": "memory"}}), registry=registry)
    try:
        assert node.api is not None  # the API's middleware counts inbound requests on the same registry
    finally:
        node.store.close()
    return {
        family.name + suffix for family in registry.collect() for suffix in SUFFIXES.get(family.type, ("",))
    }


def rules() -> list[dict[str, object]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_every_lienthong_metric_an_alert_names_is_exported() -> None:
    named = {name for rule in rules() for name in re.findall(r"\blienthong_[a-z_]+", str(rule["expr"]))}
    assert named, "the alert rules name no lienthong metric"
    assert named <= exported_names() | PLANNED, named - exported_names() - PLANNED


def test_every_rule_links_to_its_runbook_entry() -> None:
    headings = {
        line.removeprefix("## ").strip().lower()
        for line in RUNBOOK.read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    }
    for rule in rules():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        url = annotations.get("runbook_url")
        assert url == f"docs/runbook.md#{str(rule['alert']).lower()}", rule["alert"]
        assert str(rule["alert"]).lower() in headings, f"docs/runbook.md has no '## {rule['alert']}'"


def promtool_or_skip() -> str:
    import os  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    found = shutil.which("promtool")
    if found is None:
        reason = "promtool (Debian's prometheus package) is not installed; .ci/run installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI the rule tests are required")
        pytest.skip(reason)
    return found


def test_the_rules_are_valid_and_pass_their_unit_tests() -> None:
    import subprocess  # noqa: PLC0415

    promtool = promtool_or_skip()
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tests = DEPLOY / "alerts.test.yml"
    ran = subprocess.run(
        [promtool, "test", "rules", tests.name], cwd=tests.parent, capture_output=True, text=True, check=False
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_every_rule_has_a_unit_test() -> None:
    alerts = {rule["alert"] for rule in rules()}
    tests = yaml.safe_load((DEPLOY / "alerts.test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert alerts <= tested, alerts - tested
