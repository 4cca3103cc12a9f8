"""deploy/grafana/lienthong.json: every panel's query names only metrics lienthong exports, parses as PromQL,
and the dashboard covers what an operator watches."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from test_alerts import PLANNED, exported_names, promtool_or_skip

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana" / "lienthong.json"
# Words of PromQL that are not metric names when they stand alone.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left"}


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of every panel."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [(p["title"], t["expr"]) for p in panels(dashboard["panels"]) for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression, roughly: what is left once strings, label matchers, ranges,
    grouping clauses, function calls, Grafana variables and numbers are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\w+", "", expr)
    words = re.findall(r"(?<![\w:.])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()", expr)
    return {w for w in words if w not in KEYWORDS and not re.fullmatch(r"\d+[smhdwy]", w)}


def test_the_rough_parser_finds_the_metrics_of_a_query() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (route, le) (rate(x_bucket{route="/v1/events"}[$__rate_interval])))'
        " / on (job) group_left y_total and z offset 5m"
    )
    assert metric_names(expr) == {"x_bucket", "y_total", "z"}


def test_every_panel_queries_only_metrics_lienthong_exports() -> None:
    exported = exported_names() | PLANNED
    found = {name for _, expr in queries() for name in metric_names(expr)}
    assert found, "the dashboard queries nothing"
    unknown = {(title, name) for title, expr in queries() for name in metric_names(expr) - exported}
    assert unknown == set()


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    wanted = ["Traffic", "Latency", "Backlog", "Dead letters", "Circuits", "Certificates", "Reconciliation"]
    assert [*wanted, "KPIs by unit"] == [r for r in rows if r != "Process"]
    ids = [p["id"] for p in panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
    # Imported into any Grafana: every query goes to the Prometheus chosen in the dashboard's variable.
    assert {p["datasource"]["uid"] for p in panels(dashboard["panels"]) if "targets" in p} == {
        "${datasource}"
    }


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses expressions in rule files: each query becomes a recording rule ($__rate_interval: 5m).
    rules = [
        {"record": f"dashboard:query_{n}", "expr": expr.replace("$__rate_interval", "5m")}
        for n, (_, expr) in enumerate(queries())
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    checked = subprocess.run(
        [promtool_or_skip(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
