"""The liability report: what the shop owes its members, read from the real database."""

from __future__ import annotations

from datetime import timedelta

from crm_shared.auth import Identity, Role

from tests.harness.events import new_customer_id
from tests.harness.infra import wait_until
from tests.service.loyalty.conftest import NOW, SUPERVISOR, key, paid
from tests.service.loyalty.test_loyalty_coupons import issue, make_pool


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


async def test_the_liability_counts_the_coupons_still_usable_and_the_rewards_not_yet_delivered(loyalty):
    member = new_customer_id()
    await loyalty.orders(paid(member, "o-1", "1000.00", at=NOW - timedelta(days=30)))
    await loyalty.applied(1)
    five_off = await make_pool(loyalty, discount_kind="amount", amount="5.00", currency="CNY")
    tenth_off = await make_pool(loyalty, discount_kind="percent", percent="10", global_limit=3)
    await issue(loyalty, five_off, customer_id=member, count=2)   # 2 personal codes, one use each: 10.00
    await issue(loyalty, five_off, count=1)                          # generic, no global limit: unbounded
    await issue(loyalty, tenth_off, count=2)                         # generic, sharing the pool's 3 uses
    revoked = (await issue(loyalty, five_off, customer_id=member))[0]
    gift = {"reward_id": "mug-report", "name": "Mug", "kind": "gift", "points_price": 100, "sku": "MUG",
            "cash_price": "9.90", "cash_currency": "CNY"}
    async with loyalty.service.client(SUPERVISOR) as http:
        assert (await http.post(f"/v1/loyalty/coupons/{revoked['coupon_id']}/revocation",
                                json={"reason": "test"}, headers=key())).status_code in (200, 201)
        assert (await http.post("/v1/loyalty/rewards", json=gift, headers=key())).status_code == 201
        redeemed = await http.post(f"/v1/loyalty/accounts/{member}/reward-redemptions",
                                   json={"reward_id": "mug-report", "quantity": 2}, headers=key())
        assert redeemed.status_code == 201, redeemed.text
    report = await liability(loyalty)
    assert report["points"]["available"] == 800
    assert report["rewards_owed"] == {"by_status": {"requested": {"redemptions": 1, "units": 2, "points": 200}},
                                      "cash_due": {"CNY": "19.8000"}}
    coupons = report["coupons"]
    assert coupons["outstanding"] == 5 and coupons["face_value"] == {"CNY": "10.0000"}
    # The two generic 10%-off codes share their pool's 3 uses left: counted once, not per code.
    assert [(k["discount_kind"], k["coupons"], k["generic"], k["uses_left"], k["unbounded_pools"])
            for k in coupons["by_kind"]] == [("amount", 3, 1, 2, 1), ("percent", 2, 2, 3, 0)]

    async def exported() -> bool:
        return (await loyalty.service.metric("crm_loyalty_liability_coupons") == 5
                and await loyalty.service.metric("crm_loyalty_liability_rewards_owed") == 1)
    await wait_until(exported, what="the coupons and rewards owed in the metrics")
