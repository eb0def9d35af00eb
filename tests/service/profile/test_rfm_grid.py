"""The marketer's RFM grid (customers and net spend per recency × frequency score) on the real profile
service, checked against scores and sums this test computes from its own orders."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_ORDERS

from tests.harness.events import new_customer_id, order_event
from tests.harness.infra import wait_until

SUPERVISOR = Identity(subject="sup-1", role=Role.SUPERVISOR)
MARKETER = Identity(subject="mei.lin", role=Role.MARKETER)
NOW = datetime.now(UTC).replace(microsecond=0)

# Per customer: their paid orders (days ago, amount, currency) and a refund (CNY) of the first one.
ORDERS = {
    "a": ([(1, "100.00", "CNY"), (5, "100.00", "CNY"), (9, "100.00", "CNY")], None),
    "b": ([(2, "50.00", "CNY"), (20, "50.00", "CNY")], None),
    "c": ([(3, "80.00", "CNY")], None),
    "d": ([(40, "30.00", "CNY"), (50, "30.00", "CNY"), (60, "30.00", "CNY"), (70, "30.00", "CNY")], None),
    "e": ([(100, "200.00", "CNY")], "50.00"),  # net 150
    "f": ([(150, "99.00", "USD")], None),  # spend in another currency: scored, but no CNY value
    "g": ([(200, "10.00", "CNY"), (210, "10.00", "CNY")], None),
    "h": ([(4, "500.00", "CNY")], None),  # erased after the refresh: ranked, then left out of the grid
}
ERASED = "h"


def _quintile(values: dict[str, float]) -> dict[str, int]:
    """PostgreSQL's percent_rank in quintiles, as the refresh scores (ties share the lower score)."""
    n = len(values)
    return {key: min(5, 1 + math.floor((sum(other < v for other in values.values()) / (n - 1)) * 5))
            for key, v in values.items()}


def _expected_grid() -> dict[tuple[int, int], tuple[int, Decimal]]:
    recency = _quintile({k: -min(days for days, _, _ in orders) for k, (orders, _) in ORDERS.items()})
    frequency = _quintile({k: len(orders) for k, (orders, _) in ORDERS.items()})
    grid = {(r, f): (0, Decimal(0)) for r in range(1, 6) for f in range(1, 6)}
    for key, (orders, refund) in ORDERS.items():
        if key == ERASED:
            continue
        net = sum((Decimal(a) for _, a, cur in orders if cur == "CNY"), Decimal(0)) - Decimal(refund or 0)
        count, value = grid[recency[key], frequency[key]]
        grid[recency[key], frequency[key]] = (count + 1, value + net)
    return grid


async def _seed(broker, service) -> dict[str, str]:
    ids = {key: new_customer_id() for key in ORDERS}
    events = []
    for key, (orders, refund) in ORDERS.items():
        for i, (days, amount, currency) in enumerate(orders):
            order_id = f"o-{key}-{i}-{uuid.uuid4().hex[:6]}"
            at = NOW - timedelta(days=days)
            events.append(order_event("paid", ids[key], order_id, amount=amount, currency=currency, at=at))
            if refund and i == 0:
                events.append(order_event("refunded", ids[key], order_id, amount=amount, currency=currency,
                                          refund_amount=refund, at=at + timedelta(hours=1)))
    await broker.publish(TOPIC_ORDERS, events)

    async def applied() -> bool:
        async with service.client() as http:
            for key, (orders, refund) in ORDERS.items():
                profile = (await http.get(f"/v1/profiles/{ids[key]}")).json()
                if profile.get("order_count") != len(orders) or (refund and "CNY" not in profile.get("refunded", {})):
                    return False
        return True
    await wait_until(applied, what="every order and the refund applied")
    return ids


async def test_the_rfm_grid_counts_customers_and_net_spend_per_recency_and_frequency_score(
        broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    async with service.client(MARKETER) as http:
        empty = (await http.get("/v1/segments/rfm-grid")).json()
    assert empty["customers"] == 0 and empty["scored_at"] is None and len(empty["cells"]) == 25
    assert {c["value"] for c in empty["cells"]} == {"0.00"}

    ids = await _seed(broker, service)
    async with service.client(SUPERVISOR) as http:
        assert (await http.post("/v1/segments/refresh")).json()["scored"] == len(ORDERS)
        erased = await http.post(f"/v1/profiles/{ids[ERASED]}/erasure", json={"reason": "customer request R-7"},
                                 headers={"Idempotency-Key": str(uuid.uuid4())})
        assert erased.status_code == 200
        star = (await http.get(f"/v1/profiles/{ids['a']}")).json()["rfm"]

    async with service.client(MARKETER) as http:
        response = await http.get("/v1/segments/rfm-grid")
        sizes = await http.get("/v1/segments")
        one = await http.get("/v1/segments/rfm:champions")
        members = await http.get("/v1/segments/rfm:champions/members")
    assert response.status_code == 200, response.text
    grid = response.json()
    expected = _expected_grid()
    assert [(c["r"], c["f"]) for c in grid["cells"]] == [(r, f) for r in range(5, 0, -1) for f in range(1, 6)]
    assert {(c["r"], c["f"]): (c["customers"], Decimal(c["value"])) for c in grid["cells"]} == expected
    assert grid["customers"] == len(ORDERS) - 1 == sum(n for n, _ in expected.values())
    assert Decimal(grid["value"]) == sum(v for _, v in expected.values()) == Decimal("770.00")
    assert grid["currency"] == "CNY"
    assert datetime.fromisoformat(grid["scored_at"]) == datetime.fromisoformat(star["scored_at"])
    # The grid agrees with the customer's own scores, and with the named segments' sizes.
    assert next(c for c in grid["cells"] if (c["r"], c["f"]) == (star["r"], star["f"]))["customers"] >= 1
    assert sizes.status_code == 200 and sum(s["members"] for s in sizes.json()
                                            if s["segment_id"].startswith("rfm:")) == grid["customers"]
    assert one.status_code == 200 and one.json()["segment_id"] == "rfm:champions"
    # A segment's members are customers: not for marketers.
    assert members.status_code == 403

    customer = Identity(subject=ids["a"], role=Role.CUSTOMER, customer_id=ids["a"])
    async with service.client(customer) as http:
        assert (await http.get("/v1/segments/rfm-grid")).status_code == 403
        assert (await http.get("/v1/segments")).status_code == 403
