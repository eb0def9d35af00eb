"""The reward catalogue on the real loyalty service, database and broker (issue 19): never
oversold, eligibility by tier and segment, limits and windows, fulfilment by HTTP and by event,
cancels that give the points and the stock back, and the events that name the reward."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_FULFILMENT, TOPIC_LOYALTY, TOPIC_PROFILE
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import new_customer_id
from tests.harness.infra import identity_headers, wait_until
from tests.service.loyalty.conftest import NOW, SUPERVISOR, key, paid
from tests.service.loyalty.test_loyalty_coupons import make_pool, validate

FULFILMENT_SYSTEM = Identity(subject="fulfilment-1", role=Role.SERVICE, scopes=frozenset({"loyalty:fulfil"}))


async def _members(loyalty, points: int, count: int = 1, *, already: int = 0) -> list[str]:
    customers = [new_customer_id() for _ in range(count)]
    await loyalty.orders(*(paid(c, f"o-{uuid.uuid4().hex[:8]}", f"{points}.00", at=NOW - timedelta(days=30))
                           for c in customers))
    await loyalty.applied(already + count)
    return customers


async def _reward(loyalty, reward_id: str | None = None, **fields: Any) -> dict[str, Any]:
    body = {"reward_id": reward_id or f"r-{uuid.uuid4().hex[:8]}", "name": "The 2026 mug", "kind": "gift",
            "points_price": 100, "sku": "MUG-2026", **fields}
    async with loyalty.service.client(SUPERVISOR) as http:
        answer = await http.post("/v1/loyalty/rewards", json=body, headers=key())
    assert answer.status_code == 201, answer.text
    return answer.json()


async def _redeem(http: httpx.AsyncClient, customer: str, reward_id: str, quantity: int = 1,
                  headers: dict[str, str] | None = None) -> httpx.Response:
    return await http.post(f"/v1/loyalty/accounts/{customer}/reward-redemptions",
                           json={"reward_id": reward_id, "quantity": quantity}, headers=headers or key())


async def _fulfil(http: httpx.AsyncClient, redemption_id: str, status: str, note: str | None = None
                  ) -> httpx.Response:
    return await http.post(f"/v1/loyalty/reward-redemptions/{redemption_id}/fulfilment",
                           json={"status": status, **({"note": note} if note else {})}, headers=key())


async def _get_reward(loyalty, reward_id: str) -> dict[str, Any]:
    async with loyalty.service.client(SUPERVISOR) as http:
        answer = await http.get(f"/v1/loyalty/rewards/{reward_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def _problem(answer: httpx.Response) -> str:
    assert answer.headers["content-type"] == "application/problem+json", answer.text
    return answer.json()["type"].rsplit("/", 1)[-1]


async def test_200_concurrent_redemptions_of_a_reward_with_stock_10_redeem_exactly_10(loyalty):
    members = await _members(loyalty, 150, 200)
    reward = await _reward(loyalty, stock=10, points_price=100)
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=loyalty.service.url, headers=identity_headers(service="loyalty"),
                                 timeout=60, limits=limits) as http:
        answers = await asyncio.gather(*(_redeem(http, c, reward["reward_id"]) for c in members))
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 10 and statuses.count(409) == 190, sorted(statuses)
    assert {_problem(a) for a in answers if a.status_code == 409} == {"out-of-stock"}
    after = await _get_reward(loyalty, reward["reward_id"])
    assert (after["stock"], after["redeemed_count"]) == (0, 10)
    winners = {a.json()["customer_id"] for a in answers if a.status_code == 201}
    balances = await loyalty.database.fetch("SELECT customer_id, available FROM accounts")
    assert {r["customer_id"] for r in balances if r["available"] == 50} == winners
    assert {r["available"] for r in balances if r["customer_id"] not in winners} == {150}
    assert await loyalty.database.fetchval(
        "SELECT count(*) FROM redemptions WHERE kind = 'reward' AND reward_id = $1", reward["reward_id"]) == 10
    await loyalty.consistent()


async def test_eligibility_by_tier_and_by_segment_from_the_profile_s_events(loyalty):
    [member] = await _members(loyalty, 1000)
    for_vips = await _reward(loyalty, eligible_tiers=["vip", "super_vip"])
    for_segment = await _reward(loyalty, eligible_segments=["tea-lovers", "rfm:champions"])
    async with loyalty.service.client() as http:
        tier = await _redeem(http, member, for_vips["reward_id"])
        segment = await _redeem(http, member, for_segment["reward_id"])
    assert (tier.status_code, _problem(tier)) == (422, "not-eligible")
    assert (segment.status_code, _problem(segment)) == (422, "not-eligible")
    await loyalty.publish(TOPIC_PROFILE, _segment_event("entered", member, "tea-lovers"))
    await loyalty.applied(2)
    owner = Identity(subject=member, role=Role.CUSTOMER, customer_id=member)
    async with loyalty.service.client(owner) as http:
        listed = await http.get("/v1/loyalty/rewards", params={"customer_id": member})
        foreign = await http.get("/v1/loyalty/rewards", params={"customer_id": "c-someone-else"})
        redeemed = await _redeem(http, member, for_segment["reward_id"])
    assert redeemed.status_code == 201, redeemed.text
    assert foreign.status_code == 403
    flags = {r["reward_id"]: (r["eligible"], r["reason"]) for r in listed.json()["items"]}
    assert flags[for_segment["reward_id"]] == (True, None)
    assert flags[for_vips["reward_id"]][0] is False and "vip" in flags[for_vips["reward_id"]][1]
    await loyalty.publish(TOPIC_PROFILE, _segment_event("exited", member, "tea-lovers"))
    await loyalty.applied(3)
    async with loyalty.service.client() as http:
        again = await _redeem(http, member, for_segment["reward_id"])
    assert (again.status_code, _problem(again)) == (422, "not-eligible")


def _segment_event(verb: str, customer: str, segment: str) -> CloudEvent:
    return CloudEvent.new(type=f"crm.profile.segment.{verb}", source="crm/profile", subject=customer,
                          data={"customer_id": customer, "segment_id": segment,
                                "at": datetime.now(UTC).isoformat()})


async def test_the_per_customer_limit_counts_units_in_the_period_and_cancelled_ones_not(loyalty):
    [member] = await _members(loyalty, 1000)
    reward = await _reward(loyalty, per_customer_limit=2, limit_period_days=30)
    async with loyalty.service.client() as http:
        two = await _redeem(http, member, reward["reward_id"], quantity=2)
        third = await _redeem(http, member, reward["reward_id"])
    assert two.status_code == 201 and two.json()["points"] == 200
    assert (third.status_code, _problem(third)) == (422, "limit-reached")
    async with loyalty.service.client(SUPERVISOR) as http:
        assert (await _fulfil(http, two.json()["redemption_id"], "cancelled")).status_code == 200
        again = await _redeem(http, member, reward["reward_id"], quantity=2)
    assert again.status_code == 201, again.text
    assert (await loyalty.account(member))["available"] == 800


async def test_the_window_and_the_active_flag_and_replacing_a_reward_with_if_match(loyalty):
    [member] = await _members(loyalty, 1000)
    later = datetime.now(UTC) + timedelta(days=7)
    reward = await _reward(loyalty, available_from=later.isoformat())
    async with loyalty.service.client(SUPERVISOR) as http:
        early = await _redeem(http, member, reward["reward_id"])
        listed = (await http.get("/v1/loyalty/rewards")).json()["items"]
        spec = {"name": "The 2026 mug", "kind": "gift", "points_price": 120, "stock": 3}
        url = f"/v1/loyalty/rewards/{reward['reward_id']}"
        replaced = await http.put(url, json=spec, headers={"If-Match": str(reward["version"])})
        stale = await http.put(url, json={**spec, "active": False}, headers={"If-Match": str(reward["version"])})
        now_on = await _redeem(http, member, reward["reward_id"])
        # The redemption moved the version: a PUT of the stock read before it would undo it.
        behind = await http.put(url, json={**spec, "active": False}, headers={"If-Match": replaced.headers["etag"]})
        current = await http.get(url)
        off = await http.put(url, json={**spec, "stock": 2, "active": False},
                             headers={"If-Match": current.headers["etag"]})
        inactive = await _redeem(http, member, reward["reward_id"])
        missing = await _redeem(http, member, "no-such-reward")
        taken = await http.post("/v1/loyalty/rewards", json={"reward_id": reward["reward_id"], "name": "x",
                                                              "kind": "gift", "points_price": 1}, headers=key())
        invalid = await http.post("/v1/loyalty/rewards", json={"reward_id": "v-1", "name": "x", "kind": "coupon",
                                                                "points_price": 1}, headers=key())
    assert (early.status_code, _problem(early)) == (422, "reward-unavailable")
    assert reward["reward_id"] not in {r["reward_id"] for r in listed}
    assert replaced.status_code == 200 and replaced.json()["version"] == reward["version"] + 1
    assert stale.status_code == 412
    assert now_on.status_code == 201 and now_on.json()["points"] == 120
    assert behind.status_code == 412 and current.json()["stock"] == 2
    assert off.status_code == 200 and off.json()["active"] is False
    assert (inactive.status_code, _problem(inactive)) == (422, "reward-unavailable")
    assert (missing.status_code, _problem(missing)) == (404, "reward-not-found")
    assert (taken.status_code, _problem(taken)) == (409, "reward-exists")
    assert invalid.status_code == 422
    assert (await _get_reward(loyalty, reward["reward_id"]))["stock"] == 2


async def test_short_points_take_no_stock_and_a_replayed_key_redeems_once(loyalty):
    [member] = await _members(loyalty, 250)
    reward = await _reward(loyalty, stock=5, cash_price="4.5", cash_currency="CNY")
    retry = key()
    async with loyalty.service.client() as http:
        first = await _redeem(http, member, reward["reward_id"], quantity=2, headers=retry)
        replay = await _redeem(http, member, reward["reward_id"], quantity=2, headers=retry)
        short = await _redeem(http, member, reward["reward_id"], quantity=1)
        too_many = await _redeem(http, member, reward["reward_id"], quantity=11)
    assert first.status_code == 201 and replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert first.json()["cash_due"] == "9.0000" and first.json()["fulfilment_status"] == "requested"
    assert (short.status_code, _problem(short)) == (422, "insufficient-points")
    assert too_many.status_code == 422
    after = await _get_reward(loyalty, reward["reward_id"])
    assert (after["stock"], after["redeemed_count"]) == (3, 2)
    assert (await loyalty.account(member))["available"] == 50
    assert await loyalty.database.fetchval("SELECT count(*) FROM redemptions") == 1
    events = await loyalty.broker.events_published_by(loyalty.database, TOPIC_LOYALTY)
    redeemed = [e for e in events if e.type == "crm.loyalty.reward.redeemed"]
    assert len(redeemed) == 1
    assert {k: redeemed[0].data[k] for k in ("reward_id", "reward_name", "kind", "quantity", "points", "cash_due",
                                             "cash_currency", "fulfilment_status")} == {
        "reward_id": reward["reward_id"], "reward_name": "The 2026 mug", "kind": "gift", "quantity": 2,
        "points": 200, "cash_due": "9.0000", "cash_currency": "CNY", "fulfilment_status": "requested"}
    spent = [e for e in events if e.type == "crm.loyalty.points.redeemed"]
    assert [(e.data["points"], e.data["redemption_id"]) for e in spent] == [(-200, first.json()["redemption_id"])]


async def test_a_cancel_gives_the_points_back_to_their_lots_and_the_stock_back(loyalty):
    [member] = await _members(loyalty, 300)
    reward = await _reward(loyalty, stock=5)
    lots_before = await loyalty.database.fetch("SELECT lot_id, remaining FROM lots ORDER BY lot_id")
    async with loyalty.service.client(SUPERVISOR) as http:
        redeemed = (await _redeem(http, member, reward["reward_id"], quantity=2)).json()
        rid = redeemed["redemption_id"]
        shipped = await _fulfil(http, rid, "shipped", note="parcel SF123")
        again = await _fulfil(http, rid, "shipped")
        cancelled = await _fulfil(http, rid, "cancelled")
        after_cancel = await _fulfil(http, rid, "delivered")
        detail = await http.get(f"/v1/loyalty/reward-redemptions/{rid}")
        listed = await http.get(f"/v1/loyalty/accounts/{member}/reward-redemptions")
    assert (await loyalty.account(member))["available"] == 300
    assert [tuple(r) for r in await loyalty.database.fetch(
        "SELECT lot_id, remaining FROM lots ORDER BY lot_id")] == [tuple(r) for r in lots_before]
    assert shipped.status_code == 200 and again.status_code == 200 and again.json()["fulfilment_status"] == "shipped"
    assert cancelled.status_code == 200 and cancelled.json()["points_returned"] == 200
    assert (after_cancel.status_code, _problem(after_cancel)) == (409, "invalid-transition")
    assert [(h["status"], h["note"]) for h in detail.json()["history"]] == [
        ("requested", None), ("shipped", "parcel SF123"), ("cancelled", None)]
    assert [r["fulfilment_status"] for r in listed.json()] == ["cancelled"]
    after = await _get_reward(loyalty, reward["reward_id"])
    assert (after["stock"], after["redeemed_count"]) == (5, 0)
    events = await loyalty.broker.events_published_by(loyalty.database, TOPIC_LOYALTY)
    changes = [(e.data["status"], e.data.get("points_returned")) for e in events
               if e.type == "crm.loyalty.reward.fulfilment_changed"]
    assert changes == [("shipped", None), ("cancelled", 200)]
    await loyalty.consistent()


async def test_a_digital_reward_issues_its_coupon_at_once_and_cannot_be_cancelled(loyalty):
    [member] = await _members(loyalty, 300)
    pool_id = await make_pool(loyalty, discount_kind="amount", amount="5.00", currency="CNY")
    voucher = await _reward(loyalty, kind="cash_voucher", coupon_pool_id=pool_id, sku=None)
    async with loyalty.service.client(SUPERVISOR) as http:
        redeemed = (await _redeem(http, member, voucher["reward_id"])).json()
        cancel = await _fulfil(http, redeemed["redemption_id"], "cancelled")
        mine = (await http.get(f"/v1/loyalty/accounts/{member}/coupons")).json()
    async with loyalty.service.client() as http:  # an agent
        agent = await _fulfil(http, redeemed["redemption_id"], "delivered")
    assert redeemed["fulfilment_status"] == "delivered"
    [code] = redeemed["coupon_codes"]
    # The member's own one-use code from the reward's pool, worth its 5.00 off a cart.
    assert [(c["coupon_id"], c["code"], c["pool_id"]) for c in mine] == \
        [(redeemed["coupon_id"], code, pool_id)]
    checked = await validate(loyalty, code, customer_id=member, subtotal="30.00")
    assert (checked["valid"], checked["discount"]) == (True, "5.00")
    assert (await validate(loyalty, code, customer_id=new_customer_id()))["reason"] == "not_this_customers"
    assert (cancel.status_code, _problem(cancel)) == (409, "invalid-transition")
    assert agent.status_code == 403
    assert (await loyalty.account(member))["available"] == 200
    issued = [e for e in await loyalty.broker.events_published_by(loyalty.database, TOPIC_LOYALTY)
              if e.type == "crm.loyalty.coupon.issued"]
    assert [(e.data["coupon_id"], e.data["issued_by"]) for e in issued] == \
        [(redeemed["coupon_id"], f"reward:{redeemed['redemption_id']}")]
    assert all(code not in e.model_dump_json() for e in issued)  # the code is a secret: never on the bus


async def test_a_digital_reward_whose_pool_cannot_issue_is_refused_with_stock_and_points_untouched(loyalty):
    [member] = await _members(loyalty, 300)
    pool_id = await make_pool(loyalty, discount_kind="free_shipping")
    reward = await _reward(loyalty, kind="free_shipping", coupon_pool_id=pool_id, sku=None, stock=3)
    async with loyalty.service.client(SUPERVISOR) as http:
        settings = (await http.get(f"/v1/loyalty/coupon-pools/{pool_id}")).json()
        closed = await http.put(f"/v1/loyalty/coupon-pools/{pool_id}", headers={"If-Match": str(settings["version"])},
                                json={"name": "Test", "discount_kind": "free_shipping", "active": False})
        assert closed.status_code == 200, closed.text
        refused = await _redeem(http, member, reward["reward_id"])
    assert (refused.status_code, _problem(refused)) == (422, "coupon-pool-inactive")
    assert (await _get_reward(loyalty, reward["reward_id"]))["stock"] == 3
    assert (await loyalty.account(member))["available"] == 300


async def test_a_fulfilment_system_moves_a_gift_by_event_and_a_bad_move_is_dead_lettered(loyalty):
    [member] = await _members(loyalty, 300)
    reward = await _reward(loyalty)
    async with loyalty.service.client(FULFILMENT_SYSTEM) as http:
        redeemed = await _redeem(http, member, reward["reward_id"])
    assert redeemed.status_code == 403  # the fulfilment system's scope does not redeem
    async with loyalty.service.client() as http:
        rid = (await _redeem(http, member, reward["reward_id"])).json()["redemption_id"]
    await loyalty.publish(TOPIC_FULFILMENT, _fulfilment_event(member, rid, "delivered"))
    await _settled(loyalty, 2)
    assert await _status_of(loyalty, rid) == "requested"  # requested → delivered skips shipping: refused
    await loyalty.publish(TOPIC_FULFILMENT, _fulfilment_event(member, rid, "shipped"),
                          _fulfilment_event(member, rid, "shipped"), _fulfilment_event(member, rid, "delivered"))
    await _settled(loyalty, 5)
    assert await _status_of(loyalty, rid) == "delivered"
    assert await loyalty.service.metric("crm_events_dead_lettered_total") == 1
    async with loyalty.service.client(FULFILMENT_SYSTEM) as http:
        late_cancel = await _fulfil(http, rid, "cancelled")
    assert (late_cancel.status_code, _problem(late_cancel)) == (409, "invalid-transition")
    assert (await loyalty.account(member))["available"] == 200


def _fulfilment_event(customer: str, redemption_id: str, status: str) -> CloudEvent:
    return CloudEvent.new(type="commerce.reward.fulfilment.updated", source="fulfilment", subject=customer,
                          data={"customer_id": customer, "redemption_id": redemption_id, "status": status,
                                "occurred_at": datetime.now(UTC).isoformat()})


async def _status_of(loyalty, redemption_id: str) -> str:
    async with loyalty.service.client(SUPERVISOR) as http:
        return (await http.get(f"/v1/loyalty/reward-redemptions/{redemption_id}")).json()["fulfilment_status"]


async def _settled(loyalty, count: int) -> None:
    async def probe() -> bool:
        return sum([await loyalty.service.metric("crm_events_applied_total"),
                    await loyalty.service.metric("crm_events_duplicate_total"),
                    await loyalty.service.metric("crm_events_dead_lettered_total")]) >= count
    await wait_until(probe, what=f"{count} events settled")


async def test_erasure_forgets_the_member_s_segments_and_fulfilment_notes_and_later_segment_events(loyalty):
    [member] = await _members(loyalty, 300)
    reward = await _reward(loyalty)
    await loyalty.publish(TOPIC_PROFILE, _segment_event("entered", member, "tea-lovers"))
    await loyalty.applied(2)
    async with loyalty.service.client(SUPERVISOR) as http:
        rid = (await _redeem(http, member, reward["reward_id"])).json()["redemption_id"]
        assert (await _fulfil(http, rid, "shipped", note="left with the neighbour")).status_code == 200
    await loyalty.publish(TOPIC_PROFILE, CloudEvent.new(
        type="crm.profile.customer.erased", source="crm/profile", subject=member,
        data={"customer_id": member, "erased_at": datetime.now(UTC).isoformat()}))
    await loyalty.applied(3)
    await loyalty.publish(TOPIC_PROFILE, _segment_event("entered", member, "rfm:champions"))
    await loyalty.applied(4)
    assert await loyalty.database.fetchval("SELECT count(*) FROM member_segments") == 0
    assert await loyalty.database.fetchval(
        "SELECT count(*) FROM reward_fulfilment_history WHERE note IS NOT NULL") == 0
    assert await _status_of(loyalty, rid) == "shipped"  # the redemption itself stays, anonymous
