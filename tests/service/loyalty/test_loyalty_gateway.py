"""The loyalty service behind the real gateway: routes, role rules and the customer 360."""

from __future__ import annotations

import uuid
from datetime import timedelta

from crm_shared.events.catalogue import TOPIC_ORDERS

from tests.harness.events import new_customer_id
from tests.harness.infra import wait_until
from tests.service.gateway.conftest import bearer
from tests.service.loyalty.conftest import NOW, paid


async def test_members_use_their_points_through_the_gateway_and_the_360_shows_them(broker, gateway_stack):
    stack = gateway_stack(upstreams=("profile", "loyalty"))
    customer = new_customer_id()
    await broker.publish(TOPIC_ORDERS, [paid(customer, "o-gw", "250.00", at=NOW - timedelta(days=30))])

    async with stack.client(bearer("agent", "agent-1")) as agent:
        async def loyalty_ok() -> bool:
            view = (await agent.get(f"/v1/customers/{customer}")).json()
            return view.get("loyalty", {}).get("status") == "ok"
        await wait_until(loyalty_ok, what="loyalty part in the 360")
        view = (await agent.get(f"/v1/customers/{customer}")).json()
        stranger = (await agent.get(f"/v1/customers/{new_customer_id()}"))
    assert view["loyalty"]["data"]["available"] == 250 and view["loyalty"]["data"]["tier"] == "regular"
    assert stranger.json()["loyalty"]["status"] == "not_found"

    async with stack.client(bearer("customer", customer)) as member:
        redeemed = await member.post(f"/v1/loyalty/accounts/{customer}/redemptions",
                                     json={"points": 100, "kind": "gift", "gift_sku": "MUG-1"},
                                     headers={"Idempotency-Key": str(uuid.uuid4())})
        account = await member.get(f"/v1/loyalty/accounts/{customer}")
        ledger = await member.get(f"/v1/loyalty/accounts/{customer}/ledger")
        adjust = await member.post(f"/v1/loyalty/accounts/{customer}/adjustments",
                                   json={"points": 1000, "reason": "self-service"},
                                   headers={"Idempotency-Key": str(uuid.uuid4())})
    assert redeemed.status_code == 201, redeemed.text
    assert account.json()["available"] == 150
    assert [e["kind"] for e in ledger.json()["items"]] == ["redeem", "release", "earn"]
    assert adjust.status_code == 403
