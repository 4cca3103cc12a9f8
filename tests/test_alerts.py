"""deploy/alerts.yml only watches metrics lienthong really exports."""

from __future__ import annotations

import re
from pathlib import Path

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
