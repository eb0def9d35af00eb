"""Alert rules and dashboards are well formed, wired into Prometheus and Grafana, and cover what an
SRE must see. (That every metric they name is really exported: tests/e2e/test_metrics_exported.py.)

promtool (Debian's, fetched into the virtualenv by `make install` where apt exists) checks and
unit-tests the rules; without it the structural checks and the PromQL parse below still run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import promql_parser
import pytest
import yaml

from tests.harness.observability import (
    ALERT_RULES,
    DASHBOARDS,
    ROOT,
    alert_expressions,
    alert_rules,
    dashboard_expressions,
    metric_names,
    panels,
)

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
OPERATIONS_GUIDE = ROOT / "docs" / "operations.md"
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
SEVERITIES = {"page", "ticket"}


def promtool() -> str | None:
    return shutil.which("promtool", path=str(Path(sys.executable).parent)) or shutil.which("promtool")


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown text."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


# --- alert rules --------------------------------------------------------------------------------


def test_every_alert_is_named_once_has_a_severity_a_text_and_a_runbook_that_exists():
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    anchors = heading_anchors(OPERATIONS_GUIDE.read_text())
    for rule in rules:
        assert re.fullmatch(r"Crm[A-Z][A-Za-z0-9]+", rule["alert"]), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys(), rule["alert"]
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, f"{rule['alert']}: no section #{anchor}"
        if "for" in rule:
            assert DURATION.match(rule["for"]), rule["alert"]
        assert metric_names(rule["expr"]), f"{rule['alert']} selects no metric"


def test_the_alerts_an_sre_needs_are_there():
    by_name = {rule["alert"]: rule for rule in alert_rules()}
    watched = {name: metric_names(rule["expr"]) for name, rule in by_name.items()}
    needs = {  # what the issue asks to be woken up for → the metric that tells it
        "service down": "up",
        "error rate": "http_server_request_duration_seconds_count",
        "p99 latency": "http_server_request_duration_seconds_bucket",
        "consumer lag growing": "crm_consumer_lag_records",
        "outbox backlog": "crm_outbox_backlog_rows",
        "dead letters appearing": "crm_events_dead_lettered_total",
        "SLA breach rate": "crm_tickets_sla_breaches_total",
        "DB connection saturation": "crm_db_pool_connections",
    }
    for need, metric in needs.items():
        assert any(metric in names for names in watched.values()), f"no alert for {need} ({metric})"
    assert "histogram_quantile(0.99" in by_name["CrmHighLatencyP99"]["expr"]
    assert "deriv(" in by_name["CrmConsumerLagGrowing"]["expr"], "lag must be growing, not just high"


def test_prometheus_loads_the_rules_that_compose_mounts():
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = dict(m.rsplit(":", 1)[0].split(":", 1) for m in compose["services"]["prometheus"]["volumes"]
                  if m.startswith("./"))
    assert mounts["./deploy/prometheus/alerts.yml"] in config["rule_files"]


@pytest.mark.skipif(promtool() is None, reason="promtool is not installed (deploy/prometheus/fetch-promtool.sh)")
def test_promtool_accepts_the_rules_the_config_and_the_rule_unit_tests(tmp_path):
    tool = promtool()
    checked = subprocess.run([tool, "check", "rules", str(ALERT_RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The config names the rules by their path in the container; check it against the real file.
    config = (PROMETHEUS_DIR / "prometheus.yml").read_text().replace("/etc/prometheus/alerts.yml", str(ALERT_RULES))
    (tmp_path / "prometheus.yml").write_text(config)
    checked = subprocess.run([tool, "check", "config", str(tmp_path / "prometheus.yml")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([tool, "test", "rules", "alerts.test.yml"], cwd=PROMETHEUS_DIR,
                            capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {rule["alert"] for rule in alert_rules()}
    unit_tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS_DIR / "alerts.test.yml").read_text()))
    assert alerts - {"CrmOutboxPublishFailing"} <= unit_tested, "every alert the issue names has a unit test"


# --- dashboards ---------------------------------------------------------------------------------


def dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def test_dashboards_are_provisioned_well_formed_and_query_the_provisioned_datasource():
    datasources = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    uids = [d["uid"] for d in dashboards().values()]
    assert len(uids) == len(set(uids)) and {"crm-overview", "crm-business"} <= set(uids)
    for name, dashboard in dashboards().items():
        ids = [p["id"] for p in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: panel ids must be unique"
        for panel in panels(dashboard):
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, f"{name}: {panel['title']} is off the grid"
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == datasource["uid"], f"{name}: {panel['title']}"
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == datasource["uid"]
        for link in dashboard.get("links", []):
            assert link["url"].removeprefix("/d/") in uids, f"{name} links to a missing dashboard"
    for where, expr in dashboard_expressions():  # raises on a PromQL syntax error
        assert metric_names(expr), f"{where}: selects no metric"


def test_dashboards_show_red_pipeline_and_business_metrics():
    shown = {}
    for where, expr in dashboard_expressions():
        for metric in metric_names(expr):
            shown.setdefault(where.split(":")[0], set()).add(metric)
    overview, business = shown["crm-overview.json"], shown["crm-business.json"]
    # RED per service (the $job variable), consumer lag, outbox backlog, dead letters, the pool.
    assert {"http_server_request_duration_seconds_count", "http_server_request_duration_seconds_bucket",
            "crm_consumer_lag_records", "crm_outbox_backlog_rows", "crm_events_dead_lettered_total",
            "crm_db_pool_connections"} <= overview
    assert {"crm_loyalty_points_issued_total", "crm_loyalty_points_redeemed_total", "crm_loyalty_liability_points",
            "crm_tickets_open", "crm_tickets_sla_breaches_total", "crm_churn_customers"} <= business
    expressions = " ".join(expr for _where, expr in dashboard_expressions())
    assert "by (priority)" in expressions and "by (level)" in expressions


# --- aggregation over replicas ---------------------------------------------------------------------

# Every replica shows the same value (the whole outbox table): summing over replicas multiplies it.
SAME_ON_EVERY_REPLICA = {"crm_outbox_backlog_rows"}
MONEY = {"crm_loyalty_liability_value", "crm_churn_value_at_risk"}


def _aggregations(expr: str) -> list[tuple[str, set[str], object]]:
    """(operator, metrics aggregated, modifier) for every aggregation in an expression."""
    found = []

    def visit(node, *_):
        if isinstance(node, promql_parser.AggregateExpr):
            found.append((str(node.op), metric_names(str(node.expr)), node.modifier))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_replica_alike_series_are_never_summed_and_money_is_never_added_across_currencies():
    for where, expr in dashboard_expressions() + alert_expressions():
        for op, metrics, modifier in _aggregations(expr):
            if metrics & SAME_ON_EVERY_REPLICA:
                assert op == "max", f"{where}: {op} over {metrics & SAME_ON_EVERY_REPLICA} (every replica shows it)"
            if metrics & MONEY:
                kept = (modifier is not None and str(modifier.type).endswith("By")
                        and "currency" in modifier.labels)
                assert kept, f"{where}: aggregates money over currencies: {expr}"
