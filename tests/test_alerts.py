"""deploy/alerts.yml only watches metrics lienthong really exports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from lienthong.observability.metrics import Metrics

ALERTS = Path(__file__).parent.parent / "deploy" / "alerts.yml"


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.deliveries.labels("d", "o", "delivered").inc()
    metrics.delivery_latency.labels("d", "o").observe(0.1)
    metrics.observe_outbox([], ["d"], 0)
    metrics.events_received.labels("t", "accepted").inc()
    metrics.citizen_lookups.labels("found").inc()
    metrics.scheduler_runs.labels("j", "failed").inc()
    metrics.scheduler_last_success.labels("j").set(1)
    metrics.discrepancies.labels("j", "k").set(1)
    for kpi in metrics.unit_kpi:
        metrics.unit_kpi[kpi].labels("U").set(0.5)
        metrics.unit_kpi_target[kpi].labels("U").set(0.6)
    return {sample.name for family in registry.collect() for sample in family.samples}


def test_every_lienthong_metric_an_alert_names_is_exported() -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    named = {name for rule in rules for name in re.findall(r"\blienthong_[a-z_]+", rule["expr"])}
    assert named, "the alert rules name no lienthong metric"
    assert named <= exported_names(), named - exported_names()


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
    tests = ALERTS.parent / "alerts.test.yml"
    ran = subprocess.run(
        [promtool, "test", "rules", tests.name], cwd=tests.parent, capture_output=True, text=True, check=False
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_every_rule_has_a_unit_test() -> None:
    rules = {
        rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    }
    tests = yaml.safe_load((ALERTS.parent / "alerts.test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert rules <= tested, rules - tested
