"""Coupons on the real loyalty service, database and broker (issue 19): pools and codes issued by a
supervisor, used by paid orders under their limits (two orders racing for the last use: one wins),
released by a cancellation, validated for a cart with a reason, and issued by the win-back rule."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CHURN, TOPIC_CUSTOMERS, TOPIC_LOYALTY, TOPIC_NOTIFICATIONS
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import customer_registered, new_customer_id, order_event
from tests.harness.infra import wait_until
from tests.service.loyalty.conftest import NOW, SUPERVISOR, key, paid

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
STOREFRONT = Identity(subject="storefront", role=Role.SERVICE, scopes=frozenset({"coupons:validate"}))


def paid_now(customer: str, order_id: str, amount: str) -> CloudEvent:
    """Paid after the codes were issued (a code is checked at the order's business time)."""
    return paid(customer, order_id, amount, at=datetime.now(UTC))


def with_codes(event: CloudEvent, *codes: str) -> CloudEvent:
    return event.model_copy(update={"data": {**event.data, "coupon_codes": list(codes)}})


async def make_pool(loyalty, **settings: Any) -> str:
    pool_id = f"pool-{uuid.uuid4().hex[:8]}"
    async with loyalty.service.client(SUPERVISOR) as http:
        answer = await http.post("/v1/loyalty/coupon-pools", json={"pool_id": pool_id, "name": "Test", **settings},
                                 headers=key())
    assert answer.status_code == 201, answer.text
    return pool_id


async def issue(loyalty, pool_id: str, *, customer_id: str | None = None, count: int = 1) -> list[dict[str, Any]]:
    async with loyalty.service.client(SUPERVISOR) as http:
        answer = await http.post(f"/v1/loyalty/coupon-pools/{pool_id}/coupons",
                                 json={"customer_id": customer_id, "count": count}, headers=key())
    assert answer.status_code == 201, answer.text
    return answer.json()["coupons"]


async def coupon(loyalty, coupon_id: str) -> dict[str, Any]:
    async with loyalty.service.client(SUPERVISOR) as http:
        answer = await http.get(f"/v1/loyalty/coupons/{coupon_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


async def validate(loyalty, code: str, *, identity: Identity = STOREFRONT, **cart: Any) -> dict[str, Any]:
    cart.setdefault("currency", "CNY")
    if "items" not in cart:
        cart.setdefault("subtotal", "100.00")
    async with loyalty.service.client(identity) as http:
        answer = await http.post("/v1/coupons/validate", json={"code": code, **cart})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_a_code_with_one_use_left_used_by_two_orders_at_once_is_applied_once(loyalty):
    pool_id = await make_pool(loyalty, discount_kind="amount", amount="20.00", currency="CNY", global_limit=1)
    async with loyalty.service.client(SUPERVISOR) as http:
        headers = key()
        first = await http.post(f"/v1/loyalty/coupon-pools/{pool_id}/coupons", json={"count": 1}, headers=headers)
        again = await http.post(f"/v1/loyalty/coupon-pools/{pool_id}/coupons", json={"count": 1}, headers=headers)
    assert first.status_code == 201 and again.json() == first.json()  # the replay answers the same code
    [generic] = first.json()["coupons"]
    assert generic["customer_id"] is None

    # Two customers (two partitions) pay at once with the same generic code: one use is left.
    alice, bob = new_customer_id(), new_customer_id()
    await loyalty.orders(with_codes(paid_now(alice, "o-alice", "100.00"), generic["code"].lower()),
                         with_codes(paid_now(bob, "o-bob", "100.00"), generic["code"]))
    await loyalty.applied(2)

    uses = sorted((await coupon(loyalty, generic["coupon_id"]))["order_uses"], key=lambda u: u["status"])
    assert [(u["status"], u["reason"]) for u in uses] == [("applied", None), ("refused", "used_up")]
    winner, loser = uses[0]["customer_id"], uses[1]["customer_id"]
    assert {winner, loser} == {alice, bob} and float(uses[0]["discount"]) == 20
    # Points on the money part: 80 after the discount, 100 for the refused order.
    assert (await loyalty.account(winner))["pending"] == 80
    assert (await loyalty.account(loser))["pending"] == 100
    discounts = await loyalty.database.fetch("SELECT customer_id, total_amount, coupon_discount FROM orders")
    assert {(r["customer_id"], r["total_amount"], r["coupon_discount"]) for r in discounts} == {
        (winner, 80, 20), (loser, 100, 0)}

    async def counted() -> bool:
        return (await loyalty.service.metric("crm_loyalty_coupon_uses_total", outcome="applied") == 1
                and await loyalty.service.metric("crm_loyalty_coupon_uses_total", outcome="refused") == 1)
    await wait_until(counted, what="the coupon uses in the metrics")
    assert (await validate(loyalty, generic["code"]))["reason"] == "used_up"
    # The issue event names the coupon, never its code.
    issued = [e for e in await loyalty.broker.events_published_by(loyalty.database, TOPIC_LOYALTY)
              if e.type == "crm.loyalty.coupon.issued"]
    assert [e.data["coupon_id"] for e in issued] == [generic["coupon_id"]]
    assert generic["code"] not in str([e.data for e in issued])
    await loyalty.consistent()


async def test_a_cancel_releases_the_coupon_and_a_refund_takes_back_in_proportion_to_the_money(loyalty):
    customer = new_customer_id()
    pool_id = await make_pool(loyalty, discount_kind="percent", percent="10", validity_days=30)
    [personal] = await issue(loyalty, pool_id, customer_id=customer)
    code = personal["code"]
    mine = Identity(subject=customer, role=Role.CUSTOMER, customer_id=customer)
    assert (await validate(loyalty, code, identity=mine, customer_id=customer, subtotal="200.00")) == {
        "valid": True, "coupon_id": personal["coupon_id"], "pool_id": pool_id, "discount": "20.00",
        "currency": "CNY", "free_shipping": False, "reason": None, "detail": None}

    await loyalty.orders(with_codes(paid_now(customer, "o-1", "200.00"), code))
    await loyalty.applied(1)
    assert (await loyalty.account(customer))["pending"] == 180
    assert (await coupon(loyalty, personal["coupon_id"]))["uses"] == 1
    assert (await validate(loyalty, code, customer_id=customer))["reason"] == "used_up"

    await loyalty.orders(order_event("cancelled", customer, "o-1", amount="200.00", at=NOW))
    await loyalty.applied(2)
    state = await coupon(loyalty, personal["coupon_id"])
    assert state["uses"] == 0 and [u["status"] for u in state["order_uses"]] == ["released"]
    assert (await loyalty.account(customer))["pending"] == 0
    assert (await validate(loyalty, code, customer_id=customer))["valid"] is True  # usable again

    # Used again on another order, then refunded: the refund does not release; half the money
    # paid back takes back half the points.
    await loyalty.orders(with_codes(paid_now(customer, "o-2", "100.00"), code))
    await loyalty.applied(3)
    assert (await loyalty.account(customer))["pending"] == 90
    await loyalty.orders(order_event("refunded", customer, "o-2", amount="100.00", refund_amount="45.00", at=NOW))
    await loyalty.applied(4)
    assert (await loyalty.account(customer))["pending"] == 45
    await loyalty.orders(order_event("refunded", customer, "o-2", amount="100.00", refund_amount="45.00", at=NOW))
    await loyalty.applied(5)
    assert (await loyalty.account(customer))["pending"] == 0  # the whole money part back: all 90 points
    assert (await coupon(loyalty, personal["coupon_id"]))["uses"] == 1
    await loyalty.consistent()


async def test_validation_answers_each_reason_and_only_for_the_callers_own_customer(loyalty):
    alice, bob = new_customer_id(), new_customer_id()
    cny = await make_pool(loyalty, discount_kind="amount", amount="15.00", currency="CNY", min_spend="100.00",
                          categories=["tea"])
    [code_a] = await issue(loyalty, cny, customer_id=alice)
    later = await make_pool(loyalty, discount_kind="free_shipping", valid_from=(NOW + timedelta(days=5)).isoformat())
    [soon] = await issue(loyalty, later, count=1)
    [old] = await issue(loyalty, later, count=1)
    await loyalty.database.execute("UPDATE coupons SET valid_from = now() - interval '2 days', "
                                   "valid_until = now() - interval '1 day' WHERE coupon_id = $1", old["coupon_id"])
    tea = [{"sku": "T1", "category": "tea", "quantity": 2, "unit_price": "60.00"},
           {"sku": "C1", "category": "cups", "quantity": 1, "unit_price": "500.00"}]

    ok = await validate(loyalty, code_a["code"], customer_id=alice, items=tea)
    assert (ok["valid"], ok["discount"]) == (True, "15.00")
    assert (await validate(loyalty, code_a["code"], customer_id=bob, items=tea))["reason"] == "not_this_customers"
    assert (await validate(loyalty, code_a["code"], items=tea))["reason"] == "not_this_customers"
    one_tea = [{**tea[0], "quantity": 1}, tea[1]]  # 60.00 of tea: the 500.00 of cups do not count
    assert (await validate(loyalty, code_a["code"], customer_id=alice, items=one_tea))["reason"] == "minimum_not_met"
    assert (await validate(loyalty, code_a["code"], customer_id=alice, items=tea[1:]))["reason"] == \
        "no_eligible_items"
    assert (await validate(loyalty, code_a["code"], customer_id=alice, items=tea, currency="EUR"))["reason"] == \
        "wrong_currency"
    assert (await validate(loyalty, soon["code"]))["reason"] == "not_started"
    assert (await validate(loyalty, old["code"]))["reason"] == "expired"
    async with loyalty.service.client(SUPERVISOR) as http:
        revoked = await http.post(f"/v1/loyalty/coupons/{code_a['coupon_id']}/revocation",
                                  json={"reason": "test"}, headers=key())
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert (await validate(loyalty, code_a["code"], customer_id=alice, items=tea))["reason"] == "revoked"

    # A customer asks only for themselves; a service needs the scope; validation changed nothing.
    async with loyalty.service.client(Identity(subject=bob, role=Role.CUSTOMER, customer_id=bob)) as http:
        other = await http.post("/v1/coupons/validate", json={"code": code_a["code"], "customer_id": alice,
                                                              "currency": "CNY", "subtotal": "10"})
    assert other.status_code == 403
    async with loyalty.service.client(Identity(subject="erp", role=Role.SERVICE, scopes=frozenset())) as http:
        unscoped = await http.post("/v1/coupons/validate", json={"code": "X", "currency": "CNY", "subtotal": "1"})
    assert unscoped.status_code == 403
    assert await loyalty.database.fetchval("SELECT count(*) FROM coupon_uses") == 0


async def test_a_thousand_guessed_codes_are_all_not_found(loyalty):
    pool_id = await make_pool(loyalty, discount_kind="percent", percent="50")
    await issue(loyalty, pool_id, count=1000)

    def guess() -> str:
        symbols = "".join(secrets.choice(ALPHABET) for _ in range(16))
        return "-".join(symbols[i:i + 4] for i in range(0, 16, 4))

    async with loyalty.service.client(STOREFRONT) as http:
        async def one(code: str) -> str:
            answer = await http.post("/v1/coupons/validate", json={"code": code, "currency": "CNY",
                                                                   "subtotal": "100.00"})
            return answer.json()["reason"]
        reasons: list[str] = []
        guesses = [guess() for _ in range(1000)]
        for start in range(0, 1000, 50):
            reasons += await asyncio.gather(*(one(code) for code in guesses[start:start + 50]))
    assert reasons == ["not_found"] * 1000
    codes = await loyalty.database.fetch_texts("SELECT code FROM coupons")
    assert len(set(codes)) == 1000


def churn_changed(customer: str, old: str | None, new: str) -> CloudEvent:
    return CloudEvent.new(type="crm.churn.risk.changed", source="crm/churn", subject=customer,
                          data={"customer_id": customer, "old_level": old, "new_level": new, "score": 0.8,
                                "reasons": [{"factor": "recency", "contribution": 0.5}], "model_version": "t",
                                "scored_at": NOW.isoformat()})


async def test_a_win_back_with_a_coupon_pool_issues_a_personal_code(loyalty):
    pool_id = await make_pool(loyalty, discount_kind="amount", amount="30.00", currency="CNY", validity_days=14)
    async with loyalty.service.client(SUPERVISOR) as http:
        saved = await http.put("/v1/loyalty/programme", json={
            "config": {"win_back": {"reward": "coupon", "coupon_pool_id": pool_id}}, "note": "coupons"})
    assert saved.status_code == 200, saved.text
    customer = new_customer_id()
    await loyalty.orders(paid(customer, f"o-{uuid.uuid4().hex[:6]}", "2000.00", at=NOW - timedelta(days=40)))
    await loyalty.applied(1)
    await loyalty.publish(TOPIC_CHURN, churn_changed(customer, "medium", "high"))
    await loyalty.applied(2)

    offers = [n for n in await loyalty.broker.events_published_by(loyalty.database, TOPIC_NOTIFICATIONS)
              if n.data["kind"] == "win_back_offer"]
    assert len(offers) == 1
    async with loyalty.service.client(Identity(subject=customer, role=Role.CUSTOMER, customer_id=customer)) as http:
        mine = (await http.get(f"/v1/loyalty/accounts/{customer}/coupons")).json()
    assert [(c["pool_id"], c["status"], c["max_uses"]) for c in mine] == [(pool_id, "active", 1)]
    assert offers[0].data["params"]["coupon_id"] == mine[0]["coupon_id"]
    assert mine[0]["code"] not in str(offers[0].data)  # the message names the coupon, not its code
    assert (await coupon(loyalty, mine[0]["coupon_id"]))["issued_by"] == "win_back"
    assert (await loyalty.account(customer))["available"] == 2000  # a coupon instead of points


async def test_a_tier_with_a_birthday_pool_gets_one_personal_code_a_year(loyalty):
    pool_id = await make_pool(loyalty, discount_kind="percent", percent="15")
    async with loyalty.service.client(SUPERVISOR) as http:
        programme = (await http.get("/v1/loyalty/programme")).json()["config"]
        programme["tiers"]["levels"][0]["birthday_coupon_pool_id"] = pool_id
        assert (await http.put("/v1/loyalty/programme", json={"config": programme})).status_code == 200
    customer = new_customer_id()  # born 4 March (tests.harness.events.customer_registered)
    await loyalty.publish(TOPIC_CUSTOMERS, customer_registered(customer))
    await loyalty.applied(1)
    for as_of in (datetime(2027, 3, 10, tzinfo=UTC), datetime(2027, 3, 20, tzinfo=UTC),
                  datetime(2028, 3, 1, tzinfo=UTC)):
        await loyalty.job("birthdays", as_of)
    async with loyalty.service.client(SUPERVISOR) as http:
        codes = (await http.get(f"/v1/loyalty/accounts/{customer}/coupons")).json()
    assert sorted(c["valid_from"][:4] for c in codes) == ["2027", "2028"]
    # The greeting that named the coupon is the campaigns service's since issue 20: loyalty sends none.
    assert not [n for n in await loyalty.broker.events_published_by(loyalty.database, TOPIC_NOTIFICATIONS)
                if n.data["kind"] == "birthday_greeting"]
    for code in codes:
        assert (await coupon(loyalty, code["coupon_id"]))["issued_by"] == "birthday"


async def test_the_pools_are_listed_page_by_page_each_once(loyalty):
    made = sorted([await make_pool(loyalty, discount_kind="percent", percent="10") for _ in range(5)])
    seen, cursor, pages = [], None, 0
    async with loyalty.service.client(SUPERVISOR) as http:
        while True:
            page = (await http.get("/v1/loyalty/coupon-pools",
                                   params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
            seen += [p["pool_id"] for p in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == made and pages == 3
