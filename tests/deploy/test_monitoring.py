"""The alert rules and the Grafana dashboard parse, and name only metrics the server exports.

A renamed metric would otherwise leave an alert that never fires and a panel that stays empty.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

import realtime.core.metrics  # noqa: F401 (registers the metrics)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "aeturnis.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "aeturnis-dashboard.json"
SCRAPE = DEPLOY / "prometheus" / "prometheus.yml"

# Being added to realtime/metrics.py with the dependency-failure work (PROTOCOL.md §8a): the
# rules and the dashboard already use them.
PLANNED = {
    "aeturnis_dependency_up",
    "aeturnis_dependency_outages_total",
}
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
# Grafana's interval variable, as Prometheus would see it.
GRAFANA_VARIABLES = {"$__rate_interval": "1m"}


def exported_series() -> set[str]:
    names = {"up"}
    for family in REGISTRY.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def metric_names(expr: str) -> set[str]:
    """Series names an expression selects (label names and values are not names)."""
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    return set(re.findall(r"\b(aeturnis_\w+|process_\w+|up)\b(?!\s*\()", without_labels))


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in document["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            exprs.append(expr)
    return exprs


def test_every_alert_rule_is_complete_and_parses() -> None:
    found = rules()
    assert found
    for rule in found:
        assert {"alert", "expr", "labels", "annotations"} <= rule.keys(), rule
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        promql_parser.parse(rule["expr"])


def test_the_dashboard_has_panels_whose_queries_parse() -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    for expr in exprs:
        promql_parser.parse(expr)


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_only_exported_or_planned_metrics_are_used(source: str) -> None:
    exprs = [r["expr"] for r in rules()] if source == "rules" else dashboard_exprs()
    known = exported_series() | PLANNED
    used = set().union(*(metric_names(e) for e in exprs))
    assert used - known == set(), f"{source} uses metrics the server does not export"
    # Every metric of realtime/metrics.py is looked at somewhere.
    ours = {n for n in exported_series() if n.startswith("aeturnis_")}
    both = set().union(*(metric_names(e) for e in [r["expr"] for r in rules()] + dashboard_exprs()))
    assert ours - both - {"aeturnis_broadcast_fanout_seconds_sum"} == set()


def test_scrape_config_loads_the_rules_file() -> None:
    config = yaml.safe_load(SCRAPE.read_text())
    assert any(path.endswith(RULES.name) for path in config["rule_files"])
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "aeturnis" and job["metrics_path"] == "/metrics"
