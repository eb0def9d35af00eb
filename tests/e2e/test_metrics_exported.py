"""Every metric a Grafana dashboard or a Prometheus alert queries is exported by a running service:
a renamed metric or a typo in a query would leave an empty panel or an alert that never fires."""

from __future__ import annotations

import httpx
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS

from tests.harness.events import customer_registered, new_customer_id, order_event
from tests.harness.infra import wait_until
from tests.harness.observability import PROMETHEUS_SERIES, exported_series_names, queried_metrics

# Exported by every service whatever it does (shared/metrics.py and the database pool).
EVERY_SERVICE = {"crm_service_info", "http_server_request_duration_seconds_bucket", "crm_outbox_backlog_rows",
                 "crm_db_pool_connections", "crm_db_pool_max_connections"}


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{url}/metrics")
        response.raise_for_status()
        return response.text


async def test_every_metric_in_the_dashboards_and_alert_rules_is_exported_by_a_running_service(
        broker, gateway_stack):
    stack = gateway_stack()
    services = {"gateway": stack.gateway, **stack.upstreams}
    # Some traffic, so that the consumers and the business snapshots have something to say.
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    await broker.publish(TOPIC_ORDERS, [order_event("paid", customer, "o-metrics", amount="120.00")])
    for name in ("profile", "loyalty", "churn"):
        await wait_until(lambda s=services[name]: s.metric_at_least(1, "crm_events_applied_total"),
                         timeout_s=30, what=f"{name} applied an event")
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=10) as http:
        assert (await http.get("/readyz")).status_code == 200
    wanted = {name: where for name, where in queried_metrics().items() if name not in PROMETHEUS_SERIES}

    async def missing() -> dict[str, list[str]]:
        exported = {name: exported_series_names(await scrape(process.url)) for name, process in services.items()}
        for name, names in exported.items():
            assert EVERY_SERVICE <= names, f"{name} lacks {EVERY_SERVICE - names}"
        everywhere = set().union(*exported.values())
        return {metric: where for metric, where in wanted.items() if metric not in everywhere}

    # The business snapshots (loyalty, tickets, churn) appear after their first refresh.
    async def all_exported() -> bool:
        return not await missing()

    try:
        await wait_until(all_exported, timeout_s=20, interval_s=0.5, what="every queried metric")
    except AssertionError:
        raise AssertionError(f"queried but exported by no service: {await missing()}") from None
    assert len(wanted) >= 25, "the dashboards and alerts query the metrics the test expects"
