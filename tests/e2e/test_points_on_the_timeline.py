"""Profile and loyalty together, through the broker: points and tiers reach the agent's timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS

from tests.harness.events import customer_registered, new_customer_id, order_event
from tests.harness.infra import wait_until


async def test_points_earned_and_reversed_appear_on_the_profile_timeline(broker, make_database, start_service):
    profile, loyalty = start_service.together([(name, make_database(name), {}) for name in ("profile", "loyalty")])
    customer = new_customer_id()
    paid_at = datetime.now(UTC) - timedelta(days=2)
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    await broker.publish(TOPIC_ORDERS, [
        order_event("paid", customer, "o-e2e", amount="6000.00", at=paid_at),
        order_event("refunded", customer, "o-e2e", amount="6000.00", refund_amount="1500.00",
                    at=paid_at + timedelta(days=1))])

    async def timeline() -> list[dict]:
        async with profile.client() as http:
            return (await http.get(f"/v1/profiles/{customer}/timeline", params={"limit": 50})).json()["items"]

    async def has_points() -> bool:
        kinds = {entry["kind"] for entry in await timeline()}
        return {"loyalty.points.earned", "loyalty.points.reversed"} <= kinds

    await wait_until(has_points, timeout_s=30, what="points on the timeline")
    entries = {entry["kind"]: entry for entry in await timeline()}
    assert entries["loyalty.points.earned"]["details"]["points"] == 6000
    assert entries["loyalty.points.reversed"]["details"]["points"] == -1500
    assert entries["loyalty.points.reversed"]["details"]["order_id"] == "o-e2e"
    async with loyalty.client() as http:
        assert (await http.get(f"/v1/loyalty/accounts/{customer}")).json()["pending"] == 4500
