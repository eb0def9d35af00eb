"""The customer 360 from the four real services, whole and with services down or hung."""

from __future__ import annotations

import time

from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS

from tests.gateway.conftest import bearer
from tests.harness.events import customer_registered, new_customer_id, order_paid
from tests.harness.infra import wait_until


async def _with_order(http, customer: str):
    response = await http.get(f"/v1/customers/{customer}")
    if response.status_code == 200 and (response.json()["profile"].get("data") or {}).get("order_count") == 1:
        return response
    return None


async def test_the_360_has_every_part_and_degrades_within_budget_when_services_fail(broker, gateway_stack):
    stack = gateway_stack(CUSTOMER360_BUDGET_S="0.5")
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    await broker.publish(TOPIC_ORDERS, [order_paid(customer, amount="42.00")])
    async with stack.client(bearer("agent", "agent-1")) as http:
        whole = (await wait_until(lambda: _with_order(http, customer), what="order in the 360")).json()
        assert whole["complete"] is True
        assert whole["profile"]["data"]["total_spent"] == {"CNY": "42.00"}
        # The other services hold nothing for this customer yet, and say so.
        assert {whole[p]["status"] for p in ("loyalty", "open_tickets", "churn")} <= {"ok", "not_found"}

        stack.upstreams["churn"].pause()      # hung: accepts connections, never answers
        stack.upstreams["loyalty"].kill()     # down: connections refused
        try:
            started = time.monotonic()
            degraded = await http.get(f"/v1/customers/{customer}")
            elapsed = time.monotonic() - started
        finally:
            stack.upstreams["churn"].resume()
    assert degraded.status_code == 200
    body = degraded.json()
    assert elapsed < 1.0, elapsed  # the 0.5 s budget, not the services' timeouts
    assert body["complete"] is False
    assert body["profile"]["status"] == "ok" and body["profile"]["data"]["order_count"] == 1
    assert body["churn"]["status"] == "unavailable" and body["churn"]["reason"]
    assert body["loyalty"]["status"] == "unavailable"


async def test_a_customer_unknown_everywhere_is_a_404_and_other_customers_are_forbidden(gateway_stack):
    stack = gateway_stack()
    async with stack.client(bearer("agent", "agent-1")) as http:
        unknown = await http.get("/v1/customers/nobody-at-all")
    async with stack.client(bearer("customer", "c-a")) as http:
        other = await http.get("/v1/customers/c-b")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    assert other.status_code == 403
