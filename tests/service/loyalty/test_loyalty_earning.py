"""Earning on the real loyalty service: pending until the return window closes, once per order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_shared.events.catalogue import TOPIC_LOYALTY

from tests.harness.events import new_customer_id, order_event
from tests.service.loyalty.conftest import NOW, SUPERVISOR, items, paid


async def test_earned_points_are_pending_until_the_order_completes_or_the_window_closes(loyalty):
    alice, bob = new_customer_id(), new_customer_id()
    await loyalty.orders(paid(alice, "o-a1", "120.00"), paid(bob, "o-b1", "80.50"))
    await loyalty.applied(2)
    account = await loyalty.account(alice)
    assert (account["available"], account["pending"], account["tier"]) == (0, 120, "regular")

    # Alice's order completes (the return window closed early); Bob's closes by the clock.
    await loyalty.orders(order_event("completed", alice, "o-a1", amount="120.00", at=NOW))
    await loyalty.applied(3)
    assert (await loyalty.account(alice))["available"] == 120
    assert (await loyalty.account(bob))["pending"] == 80

    early = await loyalty.job("release", NOW)  # paid a day ago: the 7-day window is still open
    assert early["points"] == 0 and (await loyalty.account(bob))["available"] == 0
    released = await loyalty.job("release", NOW + timedelta(days=7))
    assert released["points"] == 80
    bob_account = await loyalty.account(bob)
    assert (bob_account["available"], bob_account["pending"], bob_account["lifetime_earned"]) == (80, 0, 80)
    assert [(e["kind"], e["available_delta"], e["pending_delta"]) for e in await loyalty.ledger(bob)] == \
        [("earn", 0, 80), ("release", 80, -80)]

    # Balance as of a business time: before the payment nothing, after it pending.
    async with loyalty.service.client() as http:
        before = (await http.get(f"/v1/loyalty/accounts/{bob}/balance",
                                 params={"as_of": (NOW - timedelta(days=2)).isoformat()})).json()
        after_payment = (await http.get(f"/v1/loyalty/accounts/{bob}/balance",
                                        params={"as_of": NOW.isoformat()})).json()
    assert (before["available"], before["pending"]) == (0, 0)
    assert (after_payment["available"], after_payment["pending"]) == (0, 80)

    earned = await loyalty.broker.events_published_by(loyalty.database, TOPIC_LOYALTY)
    assert sorted((e.data["customer_id"], e.data["points"], e.data["pending"]) for e in earned
                  if e.type == "crm.loyalty.points.earned") == sorted([(alice, 120, 120), (bob, 80, 80)])
    await loyalty.consistent()


async def test_the_same_order_delivered_three_times_earns_once(loyalty):
    customer = new_customer_id()
    first = paid(customer, "o-dup", "300.00")
    # The same event twice (redelivery) and once more under a new id (a publisher retry).
    again = paid(customer, "o-dup", "300.00", event_id=first.id)
    retried = paid(customer, "o-dup", "300.00")
    await loyalty.orders(first)
    await loyalty.orders(again, retried)
    await loyalty.applied(3)
    account = await loyalty.account(customer)
    assert (account["pending"], account["lifetime_earned"]) == (300, 300)
    assert [e["kind"] for e in await loyalty.ledger(customer)] == ["earn"]
    assert await loyalty.database.fetchval("SELECT count(*) FROM orders") == 1


async def test_points_follow_the_tier_multiplier_and_the_programme_in_force_when_paid(loyalty):
    customer = new_customer_id()
    async with loyalty.service.client(SUPERVISOR) as http:
        programme = (await http.get("/v1/loyalty/programme")).json()
        config = programme["config"]
        config["earning"]["points_per_unit"] = {"CNY": "2"}
        changed = await http.put("/v1/loyalty/programme", json={"config": config, "note": "double points"},
                                 headers={"If-Match": str(programme["version"])})
        stale = await http.put("/v1/loyalty/programme", json={"config": config},
                               headers={"If-Match": str(programme["version"])})
    assert changed.status_code == 200 and changed.json()["version"] == programme["version"] + 1
    assert stale.status_code == 412
    # Paid before the change (delivered late): the old rate. Paid after: the new one.
    await loyalty.orders(paid(customer, "o-old", "100.00", at=NOW - timedelta(days=1)),
                         paid(customer, "o-new", "100.00", at=datetime.now(UTC) + timedelta(minutes=1)))
    await loyalty.applied(2)
    rows = await loyalty.database.fetch("SELECT order_id, earned_points, programme_version FROM orders ORDER BY 1")
    assert [(r["order_id"], r["earned_points"]) for r in rows] == [("o-new", 200), ("o-old", 100)]


async def test_the_part_paid_with_points_earns_nothing(loyalty):
    customer = new_customer_id()
    await loyalty.orders(paid(customer, "o-1", "500.00", at=NOW - timedelta(days=30)))
    await loyalty.applied(1)
    async with loyalty.service.client() as http:
        discount = await loyalty.redeem(http, customer, 200, kind="order_discount", order_id="o-2", currency="CNY")
    assert discount.status_code == 201, discount.text
    assert discount.json()["money_value"] == "2.00"
    await loyalty.orders(paid(customer, "o-2", "100.00", lines=items(("A", "tea", 1, "100.00"))))
    await loyalty.applied(2)
    assert await loyalty.database.fetchval("SELECT earned_points FROM orders WHERE order_id = 'o-2'") == 98
    await loyalty.consistent()

