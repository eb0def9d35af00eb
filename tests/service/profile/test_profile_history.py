"""Purchase history, statistics and the timeline, from real events through the real service."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_INTERACTIONS, TOPIC_ORDERS

from tests.harness.events import customer_registered, interaction, new_customer_id, order_event
from tests.harness.infra import wait_until

NOW = datetime.now(UTC).replace(microsecond=0)
TEA_SET = [{"sku": "TEA-1", "category": "tea", "quantity": 2, "unit_price": "30.00"},
           {"sku": "POT-1", "category": "teaware", "quantity": 1, "unit_price": "40.00"}]


async def _profile_when(service, customer: str, check):
    async def probe():
        async with service.client() as http:
            response = await http.get(f"/v1/profiles/{customer}")
        body = response.json() if response.status_code == 200 else None
        return body if body and check(body) else None
    return await wait_until(probe, what="profile state")


async def test_an_interaction_and_an_order_change_the_timeline_and_statistics(broker, make_database, start_service):
    service = start_service("profile", make_database("profile"))
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    await broker.publish(TOPIC_INTERACTIONS, [
        interaction(customer, kind="product_view", at=NOW - timedelta(days=2),
                    attributes={"sku": "SNK-1", "category": "snacks"}),
        interaction(customer, kind="search", at=NOW - timedelta(days=40), attributes={"query": "oolong"})])
    await broker.publish(TOPIC_ORDERS, [
        order_event("placed", customer, "o-1", amount="100.00", items=TEA_SET, at=NOW - timedelta(hours=3)),
        order_event("paid", customer, "o-1", amount="100.00", items=TEA_SET, at=NOW - timedelta(hours=2)),
        order_event("completed", customer, "o-1", amount="100.00", items=TEA_SET, at=NOW - timedelta(hours=1))])

    profile = await _profile_when(service, customer, lambda p: p["order_count"] == 1 and
                                  p["activity"]["last_90_days"] == 2)
    assert profile["total_spent"] == {"CNY": "100.00"} and profile["average_order_value"] == {"CNY": "100.00"}
    assert [(c["category"], c["quantity"]) for c in profile["categories"]] == [("tea", 2), ("teaware", 1)]
    assert profile["activity"] == {"last_7_days": 1, "last_30_days": 1, "last_90_days": 2}
    assert profile["return_rate"] == 0.0
    # Bought tea twice (6 points), teaware once (3), viewed snacks once (1).
    assert profile["favourite_categories"] == ["tea", "teaware", "snacks"]

    async with service.client() as http:
        async def completed():
            page = (await http.get(f"/v1/profiles/{customer}/timeline")).json()
            return page if page["items"] and page["items"][0]["kind"] == "order.completed" else None
        page = await wait_until(completed, what="order completed on the timeline")
        orders_only = (await http.get(f"/v1/profiles/{customer}/timeline", params={"kind": "order"})).json()
        views = (await http.get(f"/v1/profiles/{customer}/timeline",
                                params={"kind": "interaction.product_view"})).json()
        first = (await http.get(f"/v1/profiles/{customer}/timeline", params={"limit": 2})).json()
        rest = (await http.get(f"/v1/profiles/{customer}/timeline",
                               params={"limit": 2, "cursor": first["next_cursor"]})).json()
        bad_cursor = await http.get(f"/v1/profiles/{customer}/timeline", params={"cursor": "nonsense"})
        huge = base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|99999999999999999999999").decode()
        huge_cursor = await http.get(f"/v1/profiles/{customer}/timeline", params={"cursor": huge})
        orders = (await http.get(f"/v1/profiles/{customer}/orders")).json()
    assert [e["kind"] for e in page["items"]] == ["order.completed", "order.paid", "order.placed",
                                                  "interaction.product_view", "interaction.search"]
    assert [e["kind"] for e in orders_only["items"]] == ["order.completed", "order.paid", "order.placed"]
    assert [e["kind"] for e in views["items"]] == ["interaction.product_view"]
    assert [e["kind"] for e in first["items"] + rest["items"]] == [e["kind"] for e in page["items"]][:4]
    assert bad_cursor.status_code == 422 and huge_cursor.status_code == 422  # never a 500
    assert orders["items"][0]["status"] == "completed" and len(orders["items"][0]["items"]) == 2
    assert orders["items"][0]["items"][1] == {"sku": "POT-1", "category": "teaware", "quantity": 1,
                                              "unit_price": "40.00"}


async def test_refunds_and_cancellations_lower_net_spend_and_never_below_zero(broker, make_database, start_service):
    service = start_service("profile", make_database("profile"))
    customer = new_customer_id()
    await broker.publish(TOPIC_ORDERS, [
        order_event("paid", customer, "o-a", amount="100.00", at=NOW - timedelta(days=3)),
        order_event("refunded", customer, "o-a", amount="100.00", refund_amount="30.00", at=NOW - timedelta(days=2)),
        order_event("paid", customer, "o-b", amount="50.00", at=NOW - timedelta(days=1)),
        order_event("cancelled", customer, "o-b", amount="50.00", at=NOW - timedelta(hours=5)),
        # An unpaid order cancelled changes no money.
        order_event("placed", customer, "o-c", amount="80.00", at=NOW - timedelta(hours=4)),
        order_event("cancelled", customer, "o-c", amount="80.00", at=NOW - timedelta(hours=3))])
    profile = await _profile_when(service, customer, lambda p: p["refunded"].get("CNY") == "80.00")
    assert profile["order_count"] == 2 and profile["total_spent"] == {"CNY": "70.00"}
    assert profile["return_rate"] == 1.0 and profile["average_order_value"] == {"CNY": "35.00"}

    # More refund than is left: capped at what was paid.
    await broker.publish(TOPIC_ORDERS, [order_event("refunded", customer, "o-a", amount="100.00",
                                                    refund_amount="500.00", at=NOW - timedelta(hours=1))])
    profile = await _profile_when(service, customer, lambda p: p["refunded"].get("CNY") == "150.00")
    assert profile["total_spent"] == {"CNY": "0.00"} and profile["return_rate"] == 1.0
    async with service.client(Identity(subject=customer, role=Role.CUSTOMER, customer_id=customer)) as http:
        orders = {o["order_id"]: o for o in (await http.get(f"/v1/profiles/{customer}/orders")).json()["items"]}
        other = await http.get(f"/v1/profiles/{new_customer_id()}/orders")
        timeline = await http.get(f"/v1/profiles/{customer}/timeline")
    assert {k: (o["status"], o["refunded_amount"]) for k, o in orders.items()} == {
        "o-a": ("refunded", "100.00"), "o-b": ("cancelled", "50.00"), "o-c": ("cancelled", "0.00")}
    assert other.status_code == 403
    assert timeline.status_code == 403  # the timeline is the call centre's view


async def test_tier_and_churn_level_are_copied_from_their_owners_events(broker, make_database, start_service):
    from crm_shared.events.catalogue import TOPIC_CHURN, TOPIC_LOYALTY
    from crm_shared.events.envelope import CloudEvent

    service = start_service("profile", make_database("profile"))
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    # As the loyalty and churn services will publish them (issues 5 and 7).
    await broker.publish(TOPIC_LOYALTY, [CloudEvent.new(
        type="crm.loyalty.tier.changed", source="crm/loyalty", subject=customer,
        data={"customer_id": customer, "old_tier": "regular", "new_tier": "vip",
              "changed_at": (NOW - timedelta(days=1)).isoformat()})])
    await broker.publish(TOPIC_CHURN, [CloudEvent.new(
        type="crm.churn.risk.changed", source="crm/churn", subject=customer,
        data={"customer_id": customer, "old_level": "low", "new_level": "high", "score": 0.81,
              "reasons": [{"factor": "no order in 120 days", "contribution": 0.4}], "model_version": "m-1",
              "scored_at": NOW.isoformat()})])
    profile = await _profile_when(service, customer, lambda p: p["tier"] == "vip" and p["churn_level"] == "high")
    assert profile["tier"] == "vip"
    async with service.client() as http:
        kinds = [e["kind"] for e in (await http.get(f"/v1/profiles/{customer}/timeline")).json()["items"]]
    assert kinds[:2] == ["churn.risk_changed", "loyalty.tier_changed"]
