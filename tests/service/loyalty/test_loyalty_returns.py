"""Refunds and cancellations on the real loyalty service: exact shares, spent points, debt."""

from __future__ import annotations

from datetime import timedelta

from tests.harness.events import new_customer_id, order_event
from tests.service.loyalty.conftest import NOW, items, paid

THREE = items(("TEA-1", "tea", 1, "100.00"), ("TEA-2", "tea", 1, "100.00"), ("CUP-1", "cups", 1, "100.00"))


async def test_refunding_one_item_of_three_reverses_exactly_that_items_points(loyalty):
    customer = new_customer_id()
    await loyalty.orders(paid(customer, "o-3", "300.00", lines=THREE))
    await loyalty.orders(order_event("refunded", customer, "o-3", amount="300.00", items=THREE,
                                     refund_amount="100.00", at=NOW,
                                     refunded_items=items(("CUP-1", "cups", 1, "100.00"))))
    await loyalty.applied(2)
    account = await loyalty.account(customer)
    assert (account["pending"], account["lifetime_earned"]) == (200, 200)
    # The rest comes back later: the two teas, by amount only (no items): exactly what is left.
    await loyalty.orders(order_event("refunded", customer, "o-3", amount="300.00", items=THREE,
                                     refund_amount="200.00", at=NOW))
    await loyalty.applied(3)
    account = await loyalty.account(customer)
    assert (account["pending"], account["available"], account["debt"]) == (0, 0, 0)
    assert [(e["kind"], e["points"]) for e in await loyalty.ledger(customer)] == \
        [("earn", 300), ("reverse", -100), ("reverse", -200)]
    await loyalty.consistent()


async def test_a_refund_after_the_points_were_spent_becomes_debt_paid_from_new_points(loyalty):
    customer = new_customer_id()
    await loyalty.orders(paid(customer, "o-1", "500.00", at=NOW - timedelta(days=30)))  # window closed
    await loyalty.applied(1)
    async with loyalty.service.client() as http:
        spent = await loyalty.redeem(http, customer, 450)
    assert spent.status_code == 201 and spent.json()["available_after"] == 50
    await loyalty.orders(order_event("refunded", customer, "o-1", amount="500.00", refund_amount="500.00", at=NOW))
    await loyalty.applied(2)
    account = await loyalty.account(customer)
    # 50 still there are taken back; the 450 already spent are owed, never a negative balance.
    assert (account["available"], account["pending"], account["debt"]) == (0, 0, 450)
    await loyalty.orders(paid(customer, "o-2", "600.00", at=NOW - timedelta(days=20)))
    await loyalty.applied(3)
    account = await loyalty.account(customer)
    assert (account["available"], account["debt"]) == (150, 0)
    await loyalty.consistent()


async def test_cancel_before_payment_returns_spent_points_and_a_late_payment_earns_nothing(loyalty):
    customer = new_customer_id()
    await loyalty.orders(paid(customer, "o-1", "1000.00", at=NOW - timedelta(days=30)))
    await loyalty.applied(1)
    async with loyalty.service.client() as http:
        discount = await loyalty.redeem(http, customer, 300, kind="order_discount", order_id="o-2", currency="CNY")
    assert discount.status_code == 201 and (await loyalty.account(customer))["available"] == 700
    await loyalty.orders(order_event("cancelled", customer, "o-2", amount="80.00", at=NOW),
                         paid(customer, "o-2", "80.00", at=NOW))
    await loyalty.applied(3)
    account = await loyalty.account(customer)
    assert (account["available"], account["pending"]) == (1000, 0)
    async with loyalty.service.client() as http:
        redemptions = (await http.get(f"/v1/loyalty/accounts/{customer}/redemptions")).json()
    assert [(r["points"], r["points_returned"]) for r in redemptions] == [(300, 300)]
    await loyalty.consistent()


async def test_cancel_after_payment_reverses_the_earning_and_returns_the_spent_points(loyalty):
    customer = new_customer_id()
    await loyalty.orders(paid(customer, "o-1", "1000.00", at=NOW - timedelta(days=30)))
    await loyalty.applied(1)
    async with loyalty.service.client() as http:
        await loyalty.redeem(http, customer, 1000, kind="order_discount", order_id="o-2", currency="CNY")
    await loyalty.orders(paid(customer, "o-2", "210.00"))  # 10.00 paid with points: earns on 200
    await loyalty.applied(2)
    account = await loyalty.account(customer)
    assert (account["available"], account["pending"]) == (0, 200)
    await loyalty.orders(order_event("cancelled", customer, "o-2", amount="210.00", at=NOW))
    await loyalty.applied(3)
    account = await loyalty.account(customer)
    assert (account["available"], account["pending"], account["debt"]) == (1000, 0, 0)
    kinds = [(e["kind"], e["points"]) for e in await loyalty.ledger(customer)]
    assert kinds[-2:] == [("reverse", -200), ("refund_of_spent", 1000)]
    # Cancelling again (a redelivery under a new id) changes nothing.
    await loyalty.orders(order_event("cancelled", customer, "o-2", amount="210.00", at=NOW))
    await loyalty.applied(4)
    assert (await loyalty.account(customer))["available"] == 1000
    await loyalty.consistent()
