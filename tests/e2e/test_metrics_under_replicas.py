"""Business metrics stay true with several replicas of a service on one database and broker.

Prometheus scrapes every replica. The database-wide business series must be exported by one
replica only (the holder of the exporter lock), so the dashboards' and alerts' ``sum`` over
replicas is the figure itself; counters never go down; lag series move with their partitions.
The sums are checked in Prometheus' own terms: both replicas are scraped at each step, the
scrapes become promtool input series, and ``promtool test rules`` evaluates the real alert rule
and the real dashboard expressions on them.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from aiokafka.partitioner import DefaultPartitioner
from crm_shared.events.catalogue import TOPIC_LOYALTY, TOPIC_ORDERS
from crm_shared.events.envelope import to_kafka
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.events import new_customer_id, order_event
from tests.harness.infra import ServiceProcess, wait_until
from tests.harness.observability import ALERT_RULES, alert_rules, dashboard_expressions, metric_names
from tests.service.tickets.conftest import Tickets, tier_changed
from tests.unit.deploy.test_observability import promtool

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]
HIGH, NORMAL = "payment", "delivery"  # categories: the default policy makes them high and normal priority
LATER = datetime.now(UTC) + timedelta(days=30)  # every SLA clock started now is breached by then


async def scrape(process: ServiceProcess) -> Series:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{process.url}/metrics")).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if not s.name.endswith("_created")}


def value(series: Series, name: str, **labels: str) -> float | None:
    """The sample ``name{labels}`` of one scrape, None if the replica does not export it."""
    return series.get((name, tuple(sorted(labels.items()))))


def exported(scrapes: list[Series], name: str, **labels: str) -> list[float]:
    """The values of ``name{labels}`` over the replicas that export it."""
    return [v for v in (value(s, name, **labels) for s in scrapes) if v is not None]


def prometheus_sum(scrapes: list[Series], name: str, **labels: str) -> float:
    return sum(exported(scrapes, name, **labels))


async def scrape_all(replicas: list[ServiceProcess]) -> list[Series]:
    return [await scrape(r) for r in replicas]


# --- SLA breaches with two replicas of the tickets service ---------------------------------------


async def test_two_tickets_replicas_report_each_breach_once_to_the_alert_and_the_dashboard(
        broker, make_database, start_service, tmp_path):
    database = make_database("tickets")
    replicas = start_service.together([("tickets", database, {}), ("tickets", database, {})])
    tickets = Tickets(replicas[0], database, broker)
    steps: list[list[Series]] = []
    markers = 0

    async def step(breaches: tuple[int, int]) -> None:
        """Open one normal-priority marker ticket, wait until every exporting replica's snapshot
        shows it (so it was read after what came before), then keep both replicas' scrapes."""
        nonlocal markers
        async with replicas[0].client() as http:
            await tickets.open(http, new_customer_id(), category=NORMAL)
        markers += 1

        async def caught_up() -> bool:
            shown = exported(await scrape_all(replicas), "crm_tickets_open", priority="normal")
            return bool(shown) and all(v == markers for v in shown)
        await wait_until(caught_up, what=f"{markers} normal tickets in the snapshot")
        scrapes = await scrape_all(replicas)
        steps.append(scrapes)
        # In Prometheus' terms at this scrape: one exporter, and sums that are the database's figures.
        assert prometheus_sum(scrapes, "crm_metrics_exporter") == 1
        assert [len(exported([s], "crm_tickets_open", priority="high")) for s in scrapes] in ([1, 0], [0, 1])
        assert prometheus_sum(scrapes, "crm_tickets_open", priority="high") == 12
        assert (prometheus_sum(scrapes, "crm_tickets_sla_breaches_total", target="first_response"),
                prometheus_sum(scrapes, "crm_tickets_sla_breaches_total", target="resolution")) == breaches

    async with replicas[0].client() as http:
        opened = [await tickets.open(http, new_customer_id(), category=HIGH) for _ in range(12)]
    await step(breaches=(0, 0))
    assert await tickets.scan(LATER) == 26  # 12 high and 1 marker, each first response and resolution
    await step(breaches=(13, 13))
    # A reopened ticket clears its resolution breach and starts a new clock: the counter stays.
    async with replicas[1].client() as http:
        assert (await tickets.move(http, opened[0]["ticket_id"], "resolved")).status_code == 200
        assert (await tickets.move(http, opened[0]["ticket_id"], "open")).status_code == 200
    await step(breaches=(13, 13))
    # The new clock breaches, and so do the two markers opened since the last scan.
    assert await tickets.scan(LATER, replicas[1]) == 5
    await step(breaches=(15, 16))

    if promtool() is None:
        pytest.skip("promtool is not installed (deploy/prometheus/fetch-promtool.sh): Python sums checked only")
    # 13 scrapes 5 minutes apart: the first step, then each later one held for 20 minutes.
    timeline = [steps[0]] + [s for s in steps[1:] for _ in range(4)]
    breach_panel = _dashboard_expr("SLA breaches per hour")
    open_panel = _dashboard_expr("Open tickets by priority")
    (rule,) = [r for r in alert_rules() if r["alert"] == "CrmTicketSlaBreaches"]
    _promtool_test(tmp_path, replicas, timeline, "tickets", alert={
        "eval_time": "60m", "alertname": "CrmTicketSlaBreaches",
        "exp_alerts": [{"exp_labels": {"severity": "ticket", "job": "tickets"}, "exp_annotations": {
            "summary": "31 ticket SLA breaches in the last hour",
            "description": rule["annotations"]["description"],
            "runbook_url": rule["annotations"]["runbook_url"]}}]}, exprs=[
        {"expr": breach_panel, "eval_time": "60m", "exp_samples": [
            {"labels": '{target="first_response"}', "value": 15}, {"labels": '{target="resolution"}', "value": 16}]},
        {"expr": open_panel, "eval_time": "60m", "exp_samples": [
            {"labels": f'{{priority="{p}"}}', "value": n} for p, n in
            (("high", 12), ("low", 0), ("normal", 4), ("urgent", 0))]},
        {"expr": "sum by (job) (crm_metrics_exporter)", "eval_time": "60m",
         "exp_samples": [{"labels": '{job="tickets"}', "value": 1}]},
    ])


async def test_the_exporter_hands_over_without_two_replicas_ever_exporting_at_once(
        broker, make_database, start_service):
    database = make_database("tickets")
    replicas = start_service.together([("tickets", database, {}), ("tickets", database, {})])
    tickets = Tickets(replicas[0], database, broker)
    async with replicas[0].client() as http:
        for _ in range(3):
            await tickets.open(http, new_customer_id(), category=HIGH)
    assert await tickets.scan(LATER) == 6

    async def exporters() -> list[int]:
        """The replicas exporting the right figures now; never two exporting at once."""
        alive = [i for i, r in enumerate(replicas) if r.process.poll() is None]
        scrapes = {i: await scrape(replicas[i]) for i in alive}
        flags = {i: value(s, "crm_metrics_exporter") for i, s in scrapes.items()}
        assert sum(flags.values()) <= 1, f"two replicas export the business series at once: {flags}"
        return [i for i, s in scrapes.items() if flags[i] == 1
                and value(s, "crm_tickets_sla_breaches_total", target="resolution") == 3]

    async def lock_holder() -> int | None:
        return await database.fetchval("""
            SELECT pid FROM pg_locks
            WHERE locktype = 'advisory' AND granted AND objsubid = 1
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('crm-metrics-exporter', 0)""")

    await wait_until(exporters, what="one exporter")
    # The lock's session ends under the exporter (a cut connection, a terminated backend).
    old = await lock_holder()
    assert await database.fetchval("SELECT pg_terminate_backend($1, 5000)", old)  # waits until it is gone

    async def new_session_exports() -> list[int]:
        holder = await lock_holder()
        return await exporters() if holder is not None and holder != old else []
    (leader,) = await wait_until(new_session_exports, what="an exporter on a new session")
    # The exporter's process dies: the other replica takes over, with the same figures.
    replicas[leader].kill()
    assert await wait_until(exporters, timeout_s=30, what="the survivor exports") == [1 - leader]
    assert value(await scrape(replicas[1 - leader]), "crm_tickets_sla_breaches_total", target="first_response") == 3


# --- consumer lag after a rebalance --------------------------------------------------------------


async def test_a_partition_that_moved_to_another_replica_leaves_no_lag_series_behind(
        broker, make_database, start_service):
    database = make_database("tickets")
    first = start_service("tickets", database)
    # One event on each partition of crm.loyalty, so the first replica has fetched from all of them.
    partitioner, partitions, events = DefaultPartitioner(), [0, 1, 2, 3], {}
    while len(events) < len(partitions):
        event = tier_changed(new_customer_id(), "gold", datetime.now(UTC))
        events.setdefault(partitioner(to_kafka(event)[0], partitions, partitions), event)
    await broker.publish(TOPIC_LOYALTY, list(events.values()))

    def lag_series(series: Series) -> set[tuple[str, str]]:
        return {(dict(labels)["topic"], dict(labels)["partition"])
                for name, labels in series if name == "crm_consumer_lag_records"}

    loyalty_partitions = {(TOPIC_LOYALTY, str(p)) for p in partitions}

    async def all_fetched() -> bool:
        return loyalty_partitions <= lag_series(await scrape(first))
    await wait_until(all_fetched, timeout_s=30, what="lag of every crm.loyalty partition")
    before = lag_series(await scrape(first))

    second = start_service("tickets", database)  # same group: the partitions are shared out

    async def shared_out() -> bool:
        mine, theirs = lag_series(await scrape(first)), lag_series(await scrape(second))
        return bool(theirs) and bool(mine) and not mine & theirs and mine | theirs == before
    await wait_until(shared_out, timeout_s=30, what="each partition's lag reported by its owner only")
    # In Prometheus' terms: every partition is one series of the group, so sum by group is its lag.
    scrapes = [await scrape(first), await scrape(second)]
    for topic, partition in before:
        assert len(exported(scrapes, "crm_consumer_lag_records", group=_group(scrapes), topic=topic,
                            partition=partition)) == 1


def _group(scrapes: list[Series]) -> str:
    (group,) = {dict(labels)["group"] for s in scrapes for name, labels in s if name == "crm_consumer_lag_records"}
    return group


# --- money carries its currency ------------------------------------------------------------------


async def test_value_at_risk_is_reported_per_currency_never_added_across_them(broker, make_database, start_service):
    database = make_database("churn")
    churn = start_service("churn", database)
    now = datetime.now(UTC)
    await broker.publish(TOPIC_ORDERS, [
        order_event("paid", new_customer_id(), f"o-{currency}-{i}", amount=amount, currency=currency,
                    at=now - timedelta(days=200 + i))
        for i, (currency, amount) in enumerate([("CNY", "800.00"), ("CNY", "300.00"), ("USD", "50.00"),
                                                ("EUR", "120.00")])])

    async def scored() -> bool:
        return await database.fetchval("SELECT count(*) FROM churn_scores") == 4
    await wait_until(scored, timeout_s=30, what="four customers scored")
    expected = {(r["level"], r["currency"]): float(r["at_risk"]) for r in await database.fetch(
        "SELECT level, currency, sum(value_at_risk) AS at_risk FROM churn_scores GROUP BY level, currency")}
    assert {currency for _, currency in expected} == {"CNY", "USD", "EUR"}

    async def reported() -> dict:
        series = await scrape(churn)
        return {(dict(labels)["level"], dict(labels).get("currency")): v for (name, labels), v in series.items()
                if name == "crm_churn_value_at_risk"}
    await wait_until(lambda: _equal(reported, expected), what="value at risk per level and currency")
    at_risk = _dashboard_expr("Value at risk by level and currency")
    assert {"level", "currency"} <= set(_grouping(at_risk)), "the panel keeps the currency apart"


async def _equal(probe, expected) -> bool:
    return await probe() == expected


# --- helpers ---------------------------------------------------------------------------------------


def _dashboard_expr(title: str) -> str:
    (expr,) = [e for where, e in dashboard_expressions() if where == f"crm-business.json: {title}"]
    return expr


def _grouping(expr: str) -> list[str]:
    import promql_parser
    return list(promql_parser.parse(expr).modifier.labels)


def _promtool_test(tmp_path: Path, replicas: list[ServiceProcess], timeline: list[list[Series]], job: str, *,
                   alert: dict, exprs: list[dict]) -> None:
    """Every series any replica exported at any step, as promtool input (``_`` where a replica did
    not export it), labelled as Prometheus' scrape would (job, instance); then the alert rule and
    the expressions evaluated on them must give exactly what is expected."""
    keys = sorted({(index, key) for scrapes in timeline for index, s in enumerate(scrapes) for key in s})
    input_series = []
    for index, (name, labels) in keys:
        labelled = {**dict(labels), "job": job, "instance": f"127.0.0.1:{replicas[index].port}"}
        selector = name + "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labelled.items())) + "}"
        values = [scrapes[index].get((name, labels)) for scrapes in timeline]
        input_series.append({"series": selector, "values": " ".join("_" if v is None else repr(v) for v in values)})
    document = {"rule_files": [str(ALERT_RULES)], "evaluation_interval": "1m", "tests": [{
        "name": "scraped from two replicas", "interval": "5m", "input_series": input_series,
        "alert_rule_test": [alert], "promql_expr_test": exprs}]}
    path = tmp_path / "replicas.test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    for expr in exprs:
        assert metric_names(expr["expr"])
    result = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
