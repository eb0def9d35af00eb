"""The loyalty counters only ever go up: undoing a movement is counted on its own counter, never
subtracted (Prometheus reads a counter that goes down as a reset and counts it all again)."""

from __future__ import annotations

from datetime import timedelta

from tests.harness.events import new_customer_id, order_event
from tests.harness.infra import wait_until
from tests.service.loyalty.conftest import NOW, paid

COUNTERS = ("issued", "redeemed", "given_back", "reversed", "expired", "deducted")


async def test_a_cancelled_order_paid_with_points_adds_to_given_back_and_reversed_and_takes_from_no_counter(
        loyalty):
    customer = new_customer_id()
    await loyalty.orders(paid(customer, "o-1", "1000.00", at=NOW - timedelta(days=30)))
    await loyalty.applied(1)
    async with loyalty.service.client() as http:
        await loyalty.redeem(http, customer, 1000, kind="order_discount", order_id="o-2", currency="CNY")
    await loyalty.orders(paid(customer, "o-2", "210.00"))  # 10.00 paid with points: earns on 200
    await loyalty.applied(2)

    async def counters() -> dict[str, float]:
        return {name: await loyalty.service.metric(f"crm_loyalty_points_{name}_total") for name in COUNTERS}

    before = {"issued": 1200, "redeemed": 1000, "given_back": 0, "reversed": 0, "expired": 0, "deducted": 0}

    async def shows_before() -> bool:
        return await counters() == before
    await wait_until(shows_before, what=f"counters {before}")
    await loyalty.orders(order_event("cancelled", customer, "o-2", amount="210.00", at=NOW))
    await loyalty.applied(3)

    async def cancel_seen() -> bool:
        return await loyalty.service.metric("crm_loyalty_points_reversed_total") == 200
    await wait_until(cancel_seen, what="the cancel in the snapshot")
    after = await counters()
    assert after == {**before, "given_back": 1000, "reversed": 200}
    assert all(after[name] >= before[name] for name in COUNTERS)
