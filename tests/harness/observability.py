"""What the dashboards and alert rules query, and what a service's /metrics exports.

Used by tests/unit/deploy/test_observability.py (the files are well formed) and by
tests/e2e/test_metrics_exported.py (every metric they name is exported by a running service).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
# Series Prometheus makes itself, not a service.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Grafana's variables, replaced by a value of the same kind so the expression parses.
_GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
_SAMPLE_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                    "summary": ("_count", "_sum", "_created"), "gaugehistogram": ("_bucket", "_gcount", "_gsum")}


def panels(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every query of every provisioned dashboard, variables substituted."""
    expressions = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in _GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                expressions.append((f"{path.name}: {panel['title']}", expr))
    return expressions


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERT_RULES.read_text())["groups"] for rule in group["rules"]]


def alert_expressions() -> list[tuple[str, str]]:
    return [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (``foo{…}`` and ``{__name__="foo"}``)."""
    names: set[str] = set()

    def visit(node, *_):
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    names.add(matcher.value)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def queried_metrics() -> dict[str, list[str]]:
    """metric name → where it is queried, over all dashboards and alert rules."""
    used: dict[str, list[str]] = {}
    for where, expr in dashboard_expressions() + alert_expressions():
        for name in metric_names(expr):
            used.setdefault(name, []).append(where)
    return used


def exported_series_names(exposition: str) -> set[str]:
    """Every series name a /metrics text can hold, also for families with no sample yet
    (a labelled counter nobody incremented still declares ``# TYPE …``)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    # Declarations in the text itself, in case the parser normalised a name.
    names.update(re.findall(r"^# TYPE (\S+) ", exposition, re.MULTILINE))
    return names
