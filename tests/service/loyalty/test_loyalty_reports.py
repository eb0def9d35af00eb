"""The liability report: what the shop owes its members, read from the real database."""

from __future__ import annotations

from datetime import timedelta

from crm_shared.auth import Identity, Role

from tests.harness.events import new_customer_id
from tests.service.loyalty.conftest import NOW, SUPERVISOR, paid


async def liability(loyalty) -> dict:
    async with loyalty.service.client(SUPERVISOR) as http:
        response = await http.get("/v1/loyalty/reports/liability")
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_liability_sums_the_points_owed_and_values_them_at_the_redemption_rate(loyalty):
    old, recent = new_customer_id(), new_customer_id()
    await loyalty.orders(paid(old, "o-old", "1234.00", at=NOW - timedelta(days=30)),  # available now
                         paid(recent, "o-new", "500.00", at=NOW - timedelta(days=1)))  # pending: window open
    await loyalty.applied(2)
    report = await liability(loyalty)
    assert report["points"] == {"available": 1234, "pending": 500, "debt": 0, "members_owed": 2,
                                "expiring_30d": 0, "expiring_90d": 0}
    # 100 points make 1.00 CNY off an order (the default programme), rounded down to the cent.
    assert report["points_value"] == {"CNY": {"available": "12.34", "pending": "5.00"}}

    async with loyalty.service.client() as http:
        spent = await loyalty.redeem(http, old, 1000)
    assert spent.status_code == 201, spent.text
    report = await liability(loyalty)
    assert (report["points"]["available"], report["points"]["pending"]) == (234, 500)
    await loyalty.consistent()


async def test_only_supervisors_read_the_liability(loyalty):
    async with loyalty.service.client(Identity(subject="agent-1", role=Role.AGENT)) as http:
        response = await http.get("/v1/loyalty/reports/liability")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
