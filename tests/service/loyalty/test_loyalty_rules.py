"""Earning rules beyond spend on the real loyalty service: sign-up, first order, reviews, referrals
and tier-up, each once, within its window and caps, by the programme version in force."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_INTERACTIONS, TOPIC_PROFILE
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import customer_registered, interaction, new_customer_id, order_event
from tests.service.loyalty.conftest import SUPERVISOR, key

DEV_PHONE = iter(range(10_000_000, 99_999_999))


async def _programme(loyalty, change) -> datetime:
    """Save a new programme version changed by ``change(config)``; a moment after it took effect."""
    async with loyalty.service.client(SUPERVISOR) as http:
        config = (await http.get("/v1/loyalty/programme")).json()["config"]
        change(config)
        saved = await http.put("/v1/loyalty/programme", json={"config": config}, headers=key())
    assert saved.status_code == 200, saved.text
    return datetime.fromisoformat(saved.json()["effective_from"]) + timedelta(seconds=1)


def _rules(**sections: dict[str, Any]):
    def change(config: dict[str, Any]) -> None:
        for name, values in sections.items():
            config["rules"][name].update(enabled=True, **values)
    return change


def registered(customer: str, at: datetime, *, email: str | None = None, phone: str | None = None,
               referred_by: str | None = None) -> CloudEvent:
    event = customer_registered(customer, email=email, at=at)
    data = {**event.data, "phone": phone or f"+86 139 {next(DEV_PHONE)}"}
    if referred_by is not None:
        data["referred_by"] = referred_by
    return event.model_copy(update={"data": data})


def paid(customer: str, at: datetime, amount: str = "100.00", *, payment: str | None = None,
         order_id: str | None = None) -> CloudEvent:
    event = order_event("paid", customer, order_id or f"o-{uuid.uuid4().hex[:10]}", amount=amount, at=at)
    if payment is not None:
        event = event.model_copy(update={"data": {**event.data, "payment_fingerprint": payment}})
    return event


async def _bonuses(loyalty, customer: str) -> list[tuple[str, int]]:
    return [(e["campaign"], e["points"]) for e in await loyalty.ledger(customer) if e["kind"] == "bonus"]


async def test_sign_up_and_first_order_bonuses_once_and_only_for_events_after_the_rule(loyalty):
    early, member = new_customer_id(), new_customer_id()
    before = datetime.now(UTC) - timedelta(minutes=5)
    after = await _programme(loyalty, _rules(signup={"points": 50},
                                             first_order={"points": 100, "min_amount": "10", "currency": "CNY"}))
    registration = registered(member, after)
    await loyalty.publish(TOPIC_CUSTOMERS, registered(early, before), registration)
    await loyalty.applied(2)
    # The same registration redelivered, and sent again as another event: still one bonus.
    await loyalty.publish(TOPIC_CUSTOMERS, registration, registration.model_copy(update={"id": str(uuid.uuid4())}))
    await loyalty.applied(4)
    first = paid(member, after + timedelta(minutes=1))
    await loyalty.orders(first, paid(member, after + timedelta(minutes=2)),
                         first.model_copy(update={"id": str(uuid.uuid4())}),
                         paid(early, after + timedelta(minutes=1), "5.00"))  # below the first-order minimum
    await loyalty.applied(8)
    assert await _bonuses(loyalty, member) == [("rule:signup", 50), ("rule:first_order", 100)]
    assert await _bonuses(loyalty, early) == []  # registered under the version before the rule
    grants = await loyalty.database.fetch("SELECT customer_id, rule, subject, points, programme_version "
                                          "FROM rule_grants ORDER BY rule")
    assert [tuple(g) for g in grants] == [(member, "first_order", "", 100, 2), (member, "signup", "", 50, 2)]
    assert (await loyalty.account(member))["available"] == 150
    await loyalty.consistent()


async def test_review_bonus_once_per_product_capped_per_period_and_only_inside_its_window(loyalty):
    reviewer, late = new_customer_id(), new_customer_id()
    ends_at = datetime.now(UTC) + timedelta(days=1)
    after = await _programme(loyalty, _rules(review={"points": 20, "max_per_period": 2, "period_days": 30,
                                                     "min_length": 5, "ends_at": ends_at.isoformat()}))

    def review(customer: str, at: datetime, **attributes: Any) -> CloudEvent:
        return interaction(customer, kind="review", at=at, attributes={"text": "very good tea", **attributes})

    minute = timedelta(minutes=1)
    await loyalty.publish(TOPIC_INTERACTIONS,
                          review(reviewer, after, sku="TEA-1"),
                          review(reviewer, after + minute, sku="TEA-1"),               # the same product again
                          review(reviewer, after + 2 * minute, sku="TEA-2", text="ok"),  # too short
                          interaction(reviewer, kind="product_view", at=after),       # not a review
                          review(reviewer, after + 3 * minute, rating=5),              # names no product
                          review(reviewer, after + 4 * minute, sku="TEA-2"),
                          review(reviewer, after + 5 * minute, sku="TEA-3"),           # over the cap of 2
                          review(late, after + timedelta(days=2), sku="TEA-1"))        # after the window
    await loyalty.applied(8)
    assert await _bonuses(loyalty, reviewer) == [("rule:review", 20), ("rule:review", 20)]
    subjects = await loyalty.database.fetch("SELECT customer_id, subject FROM rule_grants ORDER BY subject")
    assert [tuple(s) for s in subjects] == [(reviewer, "TEA-1"), (reviewer, "TEA-2")]
    # Nothing to grant locks or opens nothing: the late reviewer has no account.
    assert await loyalty.database.fetchval("SELECT count(*) FROM accounts WHERE customer_id = $1", late) == 0
    await loyalty.consistent()


async def test_a_referral_is_paid_once_and_self_referrals_are_refused(loyalty):
    referrer, referee, own, same_email, same_card = (new_customer_id() for _ in range(5))
    after = await _programme(loyalty, _rules(referral={"referrer_points": 300, "referee_points": 100,
                                                       "max_referrals_per_referrer_per_period": 5}))
    minute = timedelta(minutes=1)
    await loyalty.publish(TOPIC_CUSTOMERS, registered(referrer, after, email="Ref.Errer@example.com"))
    await loyalty.orders(paid(referrer, after, payment="tok_card_1"))
    await loyalty.applied(2)
    await loyalty.publish(TOPIC_CUSTOMERS,
                          registered(referee, after + minute, referred_by=referrer),
                          registered(own, after + minute, referred_by=own),
                          registered(same_email, after + minute, email=" ref.errer@EXAMPLE.com", referred_by=referrer),
                          registered(same_card, after + minute, referred_by=referrer))
    await loyalty.applied(6)
    await loyalty.orders(paid(referee, after + 2 * minute, payment="tok_card_2"),
                         paid(same_card, after + 2 * minute, payment="tok_card_1"))
    await loyalty.applied(8)
    await loyalty.orders(paid(referee, after + 3 * minute, payment="tok_card_2"))  # the second order pays nothing
    await loyalty.applied(9)

    assert await _bonuses(loyalty, referrer) == [("rule:referral_referrer", 300)]
    assert await _bonuses(loyalty, referee) == [("rule:referral_referee", 100)]
    assert await _bonuses(loyalty, same_card) == [] and await _bonuses(loyalty, same_email) == []
    async with loyalty.service.client(SUPERVISOR) as http:
        made = (await http.get(f"/v1/loyalty/accounts/{referrer}/referrals")).json()
        self_made = (await http.get(f"/v1/loyalty/accounts/{own}/referrals")).json()
    assert sorted((r["referee_id"], r["status"], r["reason"]) for r in made) == sorted([
        (referee, "paid", None), (same_email, "refused", "same-email"), (same_card, "refused", "same-payment")])
    assert [(r["referee_id"], r["status"], r["reason"]) for r in self_made] == [(own, "refused", "self-referral")]
    assert next(r for r in made if r["referee_id"] == referee)["paid_at"] is not None
    # Only keyed digests are kept, never the e-mail, phone or token; an erasure deletes them.
    digests = await loyalty.database.fetch("SELECT kind, digest FROM member_fingerprints WHERE customer_id = $1",
                                           referrer)
    assert sorted(d["kind"] for d in digests) == ["email", "payment", "phone"]
    assert all(len(d["digest"]) == 32 and b"example" not in d["digest"] for d in digests)
    await loyalty.publish(TOPIC_PROFILE, CloudEvent.new(
        type="crm.profile.customer.erased", source="crm/profile", subject=referrer,
        data={"customer_id": referrer, "erased_at": after.isoformat()}))
    await loyalty.applied(10)
    assert await loyalty.database.fetchval("SELECT count(*) FROM member_fingerprints WHERE customer_id = $1",
                                           referrer) == 0
    await loyalty.consistent()


async def test_the_tier_up_bonus_is_paid_once_per_tier_ever(loyalty):
    member = new_customer_id()

    def vip_at_10_and_a_bonus(config: dict[str, Any]) -> None:
        config["tiers"]["levels"][1].update(min_spend="10", min_orders=1)
        config["rules"]["tier_up"].update(enabled=True, points={"vip": 200})
    after = await _programme(loyalty, vip_at_10_and_a_bonus)
    order = paid(member, after)
    await loyalty.orders(order)
    await loyalty.applied(1)
    assert (await loyalty.account(member))["tier"] == "vip"
    # Refunded in full, downgraded after the grace period, then vip again: no second bonus.
    await loyalty.orders(order_event("cancelled", member, order.data["order_id"], at=after + timedelta(minutes=1)))
    await loyalty.applied(2)
    await loyalty.job("tiers", datetime.now(UTC) + timedelta(days=31))
    assert (await loyalty.account(member))["tier"] == "regular"
    await loyalty.orders(paid(member, after + timedelta(minutes=2)))
    await loyalty.applied(3)
    assert (await loyalty.account(member))["tier"] == "vip"
    assert await _bonuses(loyalty, member) == [("rule:tier_up", 200)]
    await loyalty.consistent()


async def test_a_bad_rules_section_is_refused(loyalty):
    async with loyalty.service.client(SUPERVISOR) as http:
        config = (await http.get("/v1/loyalty/programme")).json()["config"]
        config["rules"]["tier_up"]["points"] = {"gold": 10}
        unknown_tier = await http.put("/v1/loyalty/programme", json={"config": config}, headers=key())
        config["rules"]["tier_up"]["points"] = {}
        config["rules"]["first_order"]["min_amount"] = "10"
        no_currency = await http.put("/v1/loyalty/programme", json={"config": config}, headers=key())
    assert unknown_tier.status_code == 422 and no_currency.status_code == 422
