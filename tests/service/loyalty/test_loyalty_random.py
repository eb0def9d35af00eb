"""1,000 random operations on the real loyalty service, then every book must still balance.

A seeded random mix (the seed is printed on failure) of paid, completed, refunded and cancelled
orders over the broker, redemptions and adjustments over HTTP, and the release and expiry jobs,
over twenty members. Whatever the interleaving: the cached balances equal the ledger sums and the
lot sums, nothing is negative, no request fails with a 5xx, and the orders' books agree with the
ledger. The same invariants are checked in memory on thousands of generated sequences by the
Hypothesis test in test_domain.py.
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from crm_shared.events.catalogue import TOPIC_ORDERS

from tests.harness.events import order_event
from tests.service.loyalty.conftest import NOW, SUPERVISOR, items

SEED = 20261123
CATEGORIES = ["tea", "cups", "snacks"]


@pytest.mark.timeout(300)
async def test_a_thousand_random_operations_leave_every_book_balanced(loyalty):
    rng = random.Random(SEED)
    customers = [f"c-rand-{n:02d}" for n in range(20)]
    orders: dict[str, tuple[str, str, list[dict]]] = {}  # order → customer, total, items
    published = 0
    pending_events = []
    clock = NOW - timedelta(days=60)
    statuses: list[int] = []
    discounted: list[tuple[str, str]] = []  # orders with points off, to be paid (or cancelled) later

    async def flush() -> None:
        nonlocal published
        if pending_events:
            await loyalty.broker.publish(TOPIC_ORDERS, pending_events)
            published += len(pending_events)
            pending_events.clear()

    async with loyalty.service.client() as agent, loyalty.service.client(SUPERVISOR) as supervisor:
        for _ in range(1000):
            clock += timedelta(minutes=rng.randint(1, 90))
            op = rng.choices(["paid", "completed", "refunded", "cancelled", "redeem", "discount", "adjust", "job"],
                             weights=[30, 8, 10, 4, 18, 6, 8, 4])[0]
            customer = rng.choice(customers)
            if op == "paid":
                lines = items(*[(f"SKU-{rng.randint(1, 9)}", rng.choice(CATEGORIES), rng.randint(1, 3),
                                 f"{rng.randint(1, 300)}.{rng.randint(0, 99):02d}") for _ in range(rng.randint(1, 3))])
                total = f"{sum(float(i['unit_price']) * i['quantity'] for i in lines):.2f}"
                order_id = f"o-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}"
                if discounted and rng.random() < 0.5:
                    customer, order_id = discounted.pop(0)
                orders[order_id] = (customer, total, lines)
                pending_events.append(order_event("paid", customer, order_id, amount=total, items=lines, at=clock))
            elif op in ("completed", "refunded", "cancelled") and orders:
                order_id = rng.choice(list(orders))
                owner, total, lines = orders[order_id]
                extra = {}
                if op == "refunded":
                    if rng.random() < 0.5:
                        line = rng.choice(lines)
                        extra = {"refund_amount": line["unit_price"],
                                 "refunded_items": [{**line, "quantity": 1}]}
                    else:
                        extra = {"refund_amount": f"{rng.uniform(0.01, float(total)):.2f}"}
                pending_events.append(order_event(op, owner, order_id, amount=total, items=lines, at=clock, **extra))
            elif op in ("redeem", "discount"):
                await flush()
                future_order = f"o-next-{rng.getrandbits(32)}"
                body = ({"kind": "gift", "gift_sku": "MUG"} if op == "redeem" else
                        {"kind": "order_discount", "order_id": future_order, "currency": "CNY"})
                answer = await agent.post(f"/v1/loyalty/accounts/{customer}/redemptions",
                                          json={"points": rng.randint(1, 400), **body},
                                          headers={"Idempotency-Key": str(uuid.uuid4())})
                statuses.append(answer.status_code)
                if op == "discount" and answer.status_code == 201:
                    discounted.append((customer, future_order))
            elif op == "adjust":
                await flush()
                answer = await agent.post(f"/v1/loyalty/accounts/{customer}/adjustments",
                                          json={"points": rng.choice([-1, 1]) * rng.randint(1, 500),
                                                "reason": "random goodwill"},
                                          headers={"Idempotency-Key": str(uuid.uuid4())})
                statuses.append(answer.status_code)
            elif op == "job":
                await flush()
                job = rng.choice(["release", "expire"])
                as_of = clock + timedelta(days=rng.choice([0, 8, 400]))
                answer = await supervisor.post(f"/v1/loyalty/jobs/{job}", params={"as_of": as_of.isoformat()})
                statuses.append(answer.status_code)
            if len(pending_events) >= 50:
                await flush()
        await flush()
    await loyalty.applied(published)

    assert all(status < 500 for status in statuses), f"seed {SEED}: {sorted(set(statuses))}"
    assert {201, 422} <= set(statuses), f"seed {SEED}: the mix should both succeed and be refused"
    await loyalty.consistent()
    # The orders' own books agree with the ledger.
    mismatches = await loyalty.database.fetch("""
        SELECT o.order_id, o.earned_points, o.reversed_points,
               COALESCE(sum(l.points) FILTER (WHERE l.kind = 'earn'), 0) AS earned,
               COALESCE(-sum(l.points) FILTER (WHERE l.kind = 'reverse'), 0) AS reversed
        FROM orders o LEFT JOIN ledger l ON l.order_id = o.order_id
        GROUP BY o.order_id, o.earned_points, o.reversed_points
        HAVING o.earned_points <> COALESCE(sum(l.points) FILTER (WHERE l.kind = 'earn'), 0)
            OR o.reversed_points <> COALESCE(-sum(l.points) FILTER (WHERE l.kind = 'reverse'), 0)
            OR o.reversed_points > o.earned_points""")
    assert mismatches == [], f"seed {SEED}: {[dict(m) for m in mismatches][:5]}"
    returned = await loyalty.database.fetchval("SELECT count(*) FROM redemptions WHERE points_returned > points")
    assert returned == 0
    # The mix reached every kind of movement, debt included.
    kinds = set(await loyalty.database.fetch_texts("SELECT DISTINCT kind FROM ledger"))
    assert kinds == {"earn", "release", "redeem", "reverse", "refund_of_spent", "expire", "adjust"}, kinds
    assert await loyalty.database.fetchval("SELECT count(*) FROM ledger WHERE debt_delta > 0") > 0
