"""The worked example of docs/loyalty.md ("A tea shop's catalogue and coupons"), step by step
through the real gateway, loyalty service, database and broker: a supervisor sets up a coupon pool
and two rewards, a member redeems points for a coupon, the storefront (an API key) checks the code
for a cart and sends the paid order carrying it, points are earned on the money after the
discount, a gift is shipped or cancelled with its points back, and the liability shows it all."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS

from tests.harness.events import customer_registered, new_customer_id, order_event
from tests.harness.infra import wait_until
from tests.service.gateway.conftest import bearer


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def test_the_worked_example_of_the_catalogue_and_coupons_through_the_gateway(broker, gateway_stack):
    stack = gateway_stack(upstreams=("loyalty",))
    member = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(member)])
    # 1,000 points, available: an order paid a month ago (its return window has closed).
    await broker.publish(TOPIC_ORDERS, [order_event("paid", member, f"o-{uuid.uuid4().hex[:6]}", amount="1000.00",
                                                    at=datetime.now(UTC) - timedelta(days=30))])
    sup = bearer("supervisor", "sup-1")
    async with stack.client(sup) as http:
        await wait_until(lambda: _available_is(http, member, 1000), what="the member's 1,000 points")
        # 1. The supervisor: a pool (10% off tea over 100.00) and two rewards.
        pool = await http.post("/v1/loyalty/coupon-pools", headers=key(), json={
            "pool_id": "tea-10", "name": "10% off tea", "discount_kind": "percent", "percent": "10",
            "categories": ["tea"], "min_spend": "100.00", "currency": "CNY", "validity_days": 30,
            "per_customer_limit": 1})
        assert pool.status_code == 201, pool.text
        for reward in ({"reward_id": "tea-voucher", "name": "10% off your next tea", "kind": "coupon",
                        "points_price": 200, "coupon_pool_id": "tea-10"},
                       {"reward_id": "gaiwan", "name": "Porcelain gaiwan", "kind": "gift", "points_price": 500,
                        "cash_price": "9.90", "cash_currency": "CNY", "sku": "GAIWAN-1", "stock": 5,
                        "eligible_tiers": ["regular", "vip", "super_vip"], "per_customer_limit": 1,
                        "limit_period_days": 365}):
            created = await http.post("/v1/loyalty/rewards", headers=key(), json=reward)
            assert created.status_code == 201, created.text
        # The storefront's API key: validate coupons, send orders.
        api_key = await http.post("/v1/api-keys", headers=key(), json={
            "client": "storefront", "scopes": ["coupons:validate", "orders:write"]})
        assert api_key.status_code == 201, api_key.text

    # 2. The member browses what they can have, and redeems 200 points for the voucher.
    async with stack.client(bearer("customer", member)) as shopper:
        catalogue = (await shopper.get("/v1/loyalty/rewards", params={"customer_id": member})).json()
        assert {r["reward_id"]: r["eligible"] for r in catalogue["items"]} == {"tea-voucher": True, "gaiwan": True}
        voucher = await shopper.post(f"/v1/loyalty/accounts/{member}/reward-redemptions", headers=key(),
                                     json={"reward_id": "tea-voucher"})
        assert voucher.status_code == 201, voucher.text
        [code] = voucher.json()["coupon_codes"]
        mine = (await shopper.get(f"/v1/loyalty/accounts/{member}/coupons")).json()
        assert [c["code"] for c in mine] == [code]
        someone_else = await shopper.get(f"/v1/loyalty/accounts/{new_customer_id()}/coupons")
        assert someone_else.status_code == 403

    # 3. The storefront checks the code for a cart: 120.00 of tea and a 30.00 cup.
    cart = {"code": code, "customer_id": member, "currency": "CNY", "items": [
        {"sku": "LONGJING-50G", "category": "tea", "quantity": 2, "unit_price": "60.00"},
        {"sku": "CUP-1", "category": "teaware", "quantity": 1, "unit_price": "30.00"}]}
    storefront = {"X-API-Key": api_key.json()["key"]}
    async with stack.client(storefront) as shop:
        checked = (await shop.post("/v1/coupons/validate", json=cart, headers=key())).json()
        assert (checked["valid"], checked["discount"]) == (True, "12.00")
        # 4. The order is paid with the code: the total before the coupon, the code named.
        paid = order_event("paid", member, "o-tea-1", amount="150.00", items=cart["items"], at=datetime.now(UTC))
        paid = paid.model_copy(update={"data": {**paid.data, "coupon_codes": [code]}})
        sent = await shop.post("/v1/events", json=[paid.to_structured()], headers=key())
        assert sent.status_code == 202, sent.text

        async def used() -> dict | None:
            answer = (await shop.post("/v1/coupons/validate", json=cart, headers=key())).json()
            return answer if not answer["valid"] else None
        assert (await wait_until(used, what="the coupon used by the order"))["reason"] == "used_up"

    async with stack.client(sup) as http:
        # Points on the money paid: 150.00 − 12.00 = 138 pending points (1 per CNY).
        ledger = (await http.get(f"/v1/loyalty/accounts/{member}/ledger")).json()["items"]
        assert [(e["kind"], e["pending_delta"]) for e in ledger if e["order_id"] == "o-tea-1"] == [("earn", 138)]
        # 5. The gaiwan (500 points + 9.90): shipped by the fulfilment team, or cancelled with the points back.
        gift = await http.post(f"/v1/loyalty/accounts/{member}/reward-redemptions", headers=key(),
                               json={"reward_id": "gaiwan"})
        assert gift.status_code == 201, gift.text
        assert (gift.json()["fulfilment_status"], gift.json()["available_after"]) == ("requested", 300)
        report = (await http.get("/v1/loyalty/reports/liability")).json()
        assert report["points"]["available"] == 300 and report["points"]["pending"] == 138
        assert report["rewards_owed"]["by_status"]["requested"]["points"] == 500
        assert Decimal(report["rewards_owed"]["cash_due"]["CNY"]) == Decimal("9.90")
        assert report["coupons"]["outstanding"] == 0  # the only code has been used
        redemption_id = gift.json()["redemption_id"]
        shipped = await http.post(f"/v1/loyalty/reward-redemptions/{redemption_id}/fulfilment", headers=key(),
                                  json={"status": "shipped", "note": "SF1234567890"})
        assert shipped.status_code == 200, shipped.text
        cancelled = await http.post(f"/v1/loyalty/reward-redemptions/{redemption_id}/fulfilment", headers=key(),
                                    json={"status": "cancelled", "note": "lost in transit"})
        assert cancelled.status_code == 200, cancelled.text
        assert (await http.get(f"/v1/loyalty/accounts/{member}")).json()["available"] == 800
        assert (await http.get("/v1/loyalty/rewards/gaiwan")).json()["stock"] == 5


async def _available_is(http, customer: str, points: int) -> bool:
    answer = await http.get(f"/v1/loyalty/accounts/{customer}")
    return answer.status_code == 200 and answer.json()["available"] == points
