"""Order discounts on the real loyalty service: held until the member's own order is paid, capped
at a share of the order, voided (points back) otherwise (issue 17, items 5 and 15)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from crm_shared.events.catalogue import TOPIC_LOYALTY

from tests.harness.events import new_customer_id, order_event
from tests.harness.infra import wait_until
from tests.service.loyalty.conftest import NOW, SUPERVISOR, paid


async def _funded(loyalty, points: int, *, already: int = 0) -> str:
    customer = new_customer_id()
    await loyalty.orders(paid(customer, f"o-{uuid.uuid4().hex[:8]}", f"{points}.00", at=NOW - timedelta(days=30)))
    await loyalty.applied(already + 1)
    assert (await loyalty.account(customer))["available"] == points
    return customer


async def _settled(loyalty, count: int) -> tuple[float, float]:
    """Wait until ``count`` events were applied, skipped as duplicates or dead-lettered in all."""
    async def probe() -> bool:
        return sum([await loyalty.service.metric("crm_events_applied_total"),
                    await loyalty.service.metric("crm_events_duplicate_total"),
                    await loyalty.service.metric("crm_events_dead_lettered_total")]) >= count
    await wait_until(probe, what=f"{count} events settled")
    return (await loyalty.service.metric("crm_events_applied_total"),
            await loyalty.service.metric("crm_events_dead_lettered_total"))


async def _redemptions(loyalty, customer: str) -> list[dict]:
    async with loyalty.service.client(SUPERVISOR) as http:
        answer = await http.get(f"/v1/loyalty/accounts/{customer}/redemptions")
    assert answer.status_code == 200, answer.text
    return sorted(answer.json(), key=lambda r: r["order_id"] or "")


async def test_a_redemption_off_another_customers_order_neither_blocks_its_refund_nor_keeps_points(loyalty):
    """The exploit of item 15: an attacker takes points "off" the victim's coming orders. Before,
    the victim's earning shrank by the attacker's discount and the later refund and cancel failed
    with KeyError in lots_by_id (dead-lettered, so the victim kept the points)."""
    attacker = await _funded(loyalty, 1000)
    victim = new_customer_id()
    async with loyalty.service.client() as http:
        for order_id in ("o-victim-1", "o-victim-2"):
            answer = await loyalty.redeem(http, attacker, 300, kind="order_discount", order_id=order_id,
                                          currency="CNY")
            assert answer.status_code == 201, answer.text
    assert (await loyalty.account(attacker))["available"] == 400
    await loyalty.orders(paid(victim, "o-victim-1", "200.00"), paid(victim, "o-victim-2", "300.00"))
    await loyalty.orders(
        order_event("refunded", victim, "o-victim-1", amount="200.00", refund_amount="200.00", at=NOW),
        order_event("cancelled", victim, "o-victim-2", amount="300.00", at=NOW))
    applied, dead = await _settled(loyalty, 5)
    assert (applied, dead) == (5, 0)

    # The victim earned on the whole orders and gave back exactly that.
    assert [(e["kind"], e["points"], e["order_id"]) for e in await loyalty.ledger(victim)] == [
        ("earn", 200, "o-victim-1"), ("earn", 300, "o-victim-2"),
        ("reverse", -200, "o-victim-1"), ("reverse", -300, "o-victim-2")]
    account = await loyalty.account(victim)
    assert (account["available"], account["pending"], account["debt"], account["lifetime_earned"]) == (0, 0, 0, 0)
    rows = await loyalty.database.fetch(
        "SELECT order_id, earned_points, points_value, status FROM orders WHERE customer_id = $1 ORDER BY 1", victim)
    assert [(r["order_id"], r["earned_points"], r["points_value"], r["status"]) for r in rows] == [
        ("o-victim-1", 200, 0, "refunded"), ("o-victim-2", 300, 0, "cancelled")]

    # The attacker's holds can never be tied to those orders: the job voids them, points back.
    result = await loyalty.job("discount-holds", datetime.now(UTC))
    assert (result["members"], result["points"]) == (1, 600)
    assert (await loyalty.account(attacker))["available"] == 1000
    assert [(r["order_id"], r["status"], r["points_returned"]) for r in await _redemptions(loyalty, attacker)] == [
        ("o-victim-1", "voided", 300), ("o-victim-2", "voided", 300)]
    assert (await loyalty.job("discount-holds", datetime.now(UTC)))["points"] == 0
    reversed_ = [e for e in await loyalty.broker.events_published_by(loyalty.database, TOPIC_LOYALTY)
                 if e.type == "crm.loyalty.points.reversed" and e.data["customer_id"] == attacker]
    assert [(e.data["kind"], e.data["points"]) for e in reversed_] == [("refund_of_spent", 300)] * 2
    await loyalty.consistent()


async def test_a_refund_naming_another_customer_than_the_payer_is_dead_lettered(loyalty):
    payer, other = new_customer_id(), new_customer_id()
    await loyalty.orders(paid(payer, "o-1", "100.00"))
    # The payment first: the two customers' events go to different partitions, and a refund that
    # overtook its payment would make an unknown order of its own (the payment then earns nothing).
    await _settled(loyalty, 1)
    await loyalty.orders(order_event("refunded", other, "o-1", amount="100.00", refund_amount="100.00", at=NOW))
    applied, dead = await _settled(loyalty, 2)
    assert (applied, dead) == (1, 1)
    assert (await loyalty.account(payer))["pending"] == 100
    assert await loyalty.database.fetchval("SELECT count(*) FROM ledger WHERE customer_id = $1", other) == 0
    await loyalty.consistent()


async def test_discounts_are_tied_to_the_members_paid_order_up_to_the_share_cap(loyalty):
    customer = await _funded(loyalty, 10000)
    async with loyalty.service.client(SUPERVISOR) as http:
        programme = (await http.get("/v1/loyalty/programme")).json()["config"]
        programme["redemption"]["max_order_share"] = "0.3"
        assert (await http.put("/v1/loyalty/programme", json={"config": programme})).status_code == 200
    async with loyalty.service.client() as http:
        first = await loyalty.redeem(http, customer, 3000, kind="order_discount", order_id="o-2", currency="CNY")
        second = await loyalty.redeem(http, customer, 1000, kind="order_discount", order_id="o-2", currency="CNY")
        other_currency = await loyalty.redeem(http, customer, 500, kind="order_discount", order_id="o-3",
                                              currency="CNY")
    assert [a.status_code for a in (first, second, other_currency)] == [201, 201, 201]
    assert (await loyalty.account(customer))["available"] == 5500
    # 30.00 fits 30 % of 100.00 exactly; 10.00 more would not; o-3 is paid in another currency.
    # (Paid after the change: an order is judged by the programme in force when it was paid.)
    paid_at = datetime.now(UTC)
    await loyalty.orders(paid(customer, "o-2", "100.00", at=paid_at),
                         order_event("paid", customer, "o-3", amount="100.00", currency="USD", at=paid_at))
    await loyalty.applied(3)
    by_id = {r["redemption_id"]: r for r in await _redemptions(loyalty, customer)}
    first, second, other_currency = (by_id[a.json()["redemption_id"]] for a in (first, second, other_currency))
    assert [(r["status"], r["points_returned"]) for r in (first, second, other_currency)] == [
        ("applied", 0), ("voided", 1000), ("voided", 500)]
    assert second["void_reason"] == "points may pay at most 30% of an order"
    assert other_currency["void_reason"] == "the order was paid in USD"
    rows = await loyalty.database.fetch("SELECT order_id, points_value, earned_points FROM orders "
                                        "WHERE order_id IN ('o-2', 'o-3') ORDER BY 1")
    assert [(r["order_id"], str(r["points_value"]), r["earned_points"]) for r in rows] == [
        ("o-2", "30.0000", 70), ("o-3", "0.0000", 0)]
    assert (await loyalty.account(customer))["available"] == 7000
    # A refund of half the order gives back half of the applied discount, and nothing of the voided.
    await loyalty.orders(order_event("refunded", customer, "o-2", amount="100.00", refund_amount="50.00", at=NOW))
    await loyalty.applied(4)
    assert [(e["kind"], e["points"]) for e in (await loyalty.ledger(customer))[-2:]] == [
        ("reverse", -35), ("refund_of_spent", 1500)]
    await loyalty.consistent()


async def test_a_held_discount_whose_order_never_comes_is_voided_after_the_hold(loyalty):
    customer = await _funded(loyalty, 1000)
    async with loyalty.service.client() as http:
        answer = await loyalty.redeem(http, customer, 400, kind="order_discount", order_id="o-later", currency="CNY")
    assert answer.status_code == 201 and answer.json()["status"] == "held"
    created = datetime.fromisoformat(answer.json()["created_at"])
    assert (await loyalty.job("discount-holds", created + timedelta(hours=72) - timedelta(minutes=1)))["points"] == 0
    assert (await loyalty.account(customer))["available"] == 600
    assert (await loyalty.job("discount-holds", created + timedelta(hours=72)))["points"] == 400
    assert (await loyalty.job("discount-holds", created + timedelta(hours=73)))["points"] == 0
    assert (await loyalty.account(customer))["available"] == 1000
    [redemption] = [r for r in await _redemptions(loyalty, customer) if r["kind"] == "order_discount"]
    assert (redemption["status"], redemption["points_returned"]) == ("voided", 400)
    assert redemption["void_reason"] == "the order was not paid within 72 hours"
    # The order paid after all earns on its whole value: the voided discount took nothing off it.
    await loyalty.orders(paid(customer, "o-later", "100.00"))
    await loyalty.applied(2)
    assert await loyalty.database.fetchval("SELECT earned_points FROM orders WHERE order_id = 'o-later'") == 100
    async with loyalty.service.client() as http:
        late = await loyalty.redeem(http, customer, 100, kind="order_discount", order_id="o-later", currency="CNY")
    assert late.status_code == 409 and late.json()["type"].endswith("order-closed")
    await loyalty.consistent()
