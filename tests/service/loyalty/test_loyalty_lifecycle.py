"""Expiry, tiers, birthdays and win-back on the real loyalty service, driven by its jobs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from crm_shared.events.catalogue import (
    TOPIC_CHURN,
    TOPIC_CUSTOMERS,
    TOPIC_LOYALTY,
    TOPIC_NOTIFICATIONS,
    TOPIC_PROFILE,
)
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import customer_registered, new_customer_id, order_event
from tests.service.loyalty.conftest import NOW, SUPERVISOR, paid, wait_until


def churn_changed(customer: str, old: str | None, new: str, at: datetime) -> CloudEvent:
    return CloudEvent.new(type="crm.churn.risk.changed", source="crm/churn", subject=customer,
                          data={"customer_id": customer, "old_level": old, "new_level": new, "score": 0.8,
                                "reasons": [{"factor": "recency", "contribution": 0.5}], "model_version": "t",
                                "scored_at": at.isoformat()})


async def test_lots_expire_oldest_first_after_a_notice(loyalty):
    customer = new_customer_id()
    await loyalty.orders(paid(customer, "o-old", "100.00", at=NOW - timedelta(days=60)),
                         paid(customer, "o-new", "200.00", at=NOW - timedelta(days=30)))
    await loyalty.applied(2)
    async with loyalty.service.client() as http:
        assert (await loyalty.redeem(http, customer, 50)).status_code == 201  # from the older lot
        expiries = (await http.get(f"/v1/loyalty/accounts/{customer}/expiries")).json()
    assert [e["points"] for e in expiries] == [50, 200]
    first_expiry = datetime.fromisoformat(expiries[0]["expires_at"])
    second_expiry = datetime.fromisoformat(expiries[1]["expires_at"])
    assert first_expiry < second_expiry

    notices = await loyalty.job("expiry-notices", first_expiry - timedelta(days=3))
    again = await loyalty.job("expiry-notices", first_expiry - timedelta(days=2))
    assert (notices["members"], notices["points"], again["members"]) == (1, 50, 0)

    assert (await loyalty.job("expire", first_expiry - timedelta(seconds=1)))["points"] == 0
    assert (await loyalty.job("expire", first_expiry))["points"] == 50
    assert (await loyalty.account(customer))["available"] == 200
    assert (await loyalty.job("expire", second_expiry + timedelta(days=1)))["points"] == 200
    assert (await loyalty.job("expire", second_expiry + timedelta(days=2)))["points"] == 0
    expired = [(e["kind"], e["points"]) for e in await loyalty.ledger(customer) if e["kind"] == "expire"]
    assert expired == [("expire", -50), ("expire", -200)]
    notifications = await loyalty.broker.events_published_by(loyalty.database, TOPIC_NOTIFICATIONS)
    assert [(n.data["kind"], n.data["params"]["points"]) for n in notifications] == [("points_expiring", 50)]
    events = await loyalty.broker.events_published_by(loyalty.database, TOPIC_LOYALTY)
    assert [e.data["points"] for e in events if e.type == "crm.loyalty.points.expired"] == [-50, -200]
    await loyalty.consistent()


async def test_tiers_go_up_at_once_and_down_after_the_grace_period(loyalty):
    customer = new_customer_id()
    await loyalty.orders(*(paid(customer, f"o-{n}", "1000.00", at=NOW - timedelta(days=10 - n)) for n in range(5)))
    await loyalty.applied(5)
    account = await loyalty.account(customer)
    assert account["tier"] == "vip"
    # The fifth order earned at the regular rate (the tier it was paid in); the next at VIP's ×1.5.
    await loyalty.orders(paid(customer, "o-5", "1000.00", at=NOW - timedelta(days=1)))
    await loyalty.applied(6)
    earned = await loyalty.database.fetch("SELECT order_id, earned_points, tier FROM orders ORDER BY order_id")
    assert [(r["earned_points"], r["tier"]) for r in earned][-2:] == [(1000, "regular"), (1500, "vip")]

    for n in (0, 1):  # two full refunds: 4,000 over 4 orders, below VIP's 5,000 and 5 orders
        await loyalty.orders(order_event("refunded", customer, f"o-{n}", amount="1000.00", refund_amount="1000.00",
                                         at=NOW))
    await loyalty.applied(8)
    account = await loyalty.account(customer)
    assert account["tier"] == "vip" and account["tier_grace_since"] is not None
    assert (await loyalty.job("tiers", NOW + timedelta(days=29)))["members"] == 1
    assert (await loyalty.account(customer))["tier"] == "vip"
    await loyalty.job("tiers", NOW + timedelta(days=31))
    assert (await loyalty.account(customer))["tier"] == "regular"
    changes = [(e.data["old_tier"], e.data["new_tier"]) for e in
               await loyalty.broker.events_published_by(loyalty.database, TOPIC_LOYALTY)
               if e.type == "crm.loyalty.tier.changed"]
    assert changes == [(None, "regular"), ("regular", "vip"), ("vip", "regular")]
    upgrade = await loyalty.broker.events_published_by(loyalty.database, TOPIC_NOTIFICATIONS)
    assert [(n.data["kind"], n.data["params"]["new_tier"]) for n in upgrade] == [("tier_upgrade", "vip")]
    await loyalty.consistent()


async def test_the_birthday_bonus_comes_once_a_year_in_the_birthday_month(loyalty):
    customer = new_customer_id()  # born 4 March (tests.harness.events.customer_registered)
    async with loyalty.service.client(SUPERVISOR) as http:
        programme = (await http.get("/v1/loyalty/programme")).json()["config"]
        programme["tiers"]["levels"][0]["birthday_bonus"] = 100
        assert (await http.put("/v1/loyalty/programme", json={"config": programme})).status_code == 200
    await loyalty.publish(TOPIC_CUSTOMERS, customer_registered(customer))
    await loyalty.applied(1)
    assert (await loyalty.job("birthdays", datetime(2027, 2, 28, tzinfo=UTC)))["points"] == 0
    assert (await loyalty.job("birthdays", datetime(2027, 3, 10, tzinfo=UTC)))["points"] == 100
    assert (await loyalty.job("birthdays", datetime(2027, 3, 20, tzinfo=UTC)))["points"] == 0
    assert (await loyalty.job("birthdays", datetime(2027, 4, 1, tzinfo=UTC)))["points"] == 0
    assert (await loyalty.job("birthdays", datetime(2028, 3, 1, tzinfo=UTC)))["points"] == 100
    bonuses = [e["reason"] for e in await loyalty.ledger(customer) if e["kind"] == "bonus"]
    assert bonuses == ["birthday bonus 2027", "birthday bonus 2028"]
    assert (await loyalty.account(customer))["available"] == 200
    # The greeting is a campaign of the campaigns service since issue 20: loyalty asks for none.
    notifications = await loyalty.broker.events_published_by(loyalty.database, TOPIC_NOTIFICATIONS)
    assert [n for n in notifications if n.data["customer_id"] == customer] == []


async def test_a_new_member_s_entry_tier_is_announced_once(loyalty):
    """Issue 17, item 4: the profile and the 360 copy the tier from crm.loyalty.tier.changed, so the
    entry tier must be announced like any later change (it was not: they showed none)."""
    registered, buyer = new_customer_id(), new_customer_id()
    await loyalty.publish(TOPIC_CUSTOMERS, customer_registered(registered))
    await loyalty.orders(paid(buyer, "o-1", "10.00"))
    await loyalty.applied(2)
    await loyalty.publish(TOPIC_CUSTOMERS, customer_registered(registered).model_copy(
        update={"id": str(uuid.uuid4()), "type": "commerce.customer.updated"}))
    await loyalty.orders(paid(buyer, "o-2", "10.00"))
    await loyalty.applied(4)
    changes = [(e.data["customer_id"], e.data["old_tier"], e.data["new_tier"]) for e in
               await loyalty.broker.events_published_by(loyalty.database, TOPIC_LOYALTY)
               if e.type == "crm.loyalty.tier.changed"]
    assert sorted(changes) == sorted([(registered, None, "regular"), (buyer, None, "regular")])


def birthday_corrected(customer: str, month: int, day: int) -> CloudEvent:
    return CloudEvent.new(type="crm.profile.customer.birthday_changed", source="crm/profile", subject=customer,
                          data={"customer_id": customer, "month": month, "day": day,
                                "changed_at": NOW.isoformat()})


async def test_a_member_gets_the_tier_s_birthday_bonus_where_it_has_one_and_no_greeting_from_loyalty(loyalty):
    """Issue 17, item 3: the default entry tier grants no bonus. Issue 20: the greeting moved to the
    campaigns service, loyalty keeps the bonus."""
    regular, vip = new_customer_id(), new_customer_id()  # both born 4 March
    await loyalty.publish(TOPIC_CUSTOMERS, customer_registered(regular), customer_registered(vip))
    await loyalty.orders(*(paid(vip, f"o-{n}", "1000.00", at=NOW - timedelta(days=10 - n)) for n in range(5)))
    await loyalty.applied(7)
    assert (await loyalty.account(vip))["tier"] == "vip"
    assert (await loyalty.job("birthdays", datetime(2027, 3, 10, tzinfo=UTC)))["members"] == 1  # the VIP
    assert (await loyalty.job("birthdays", datetime(2027, 3, 11, tzinfo=UTC)))["members"] == 0
    # Upgraded later in the month: the VIP bonus comes.
    await loyalty.orders(*(paid(regular, f"o-r{n}", "1000.00", at=NOW - timedelta(days=10 - n)) for n in range(5)))
    await loyalty.applied(12)
    assert (await loyalty.job("birthdays", datetime(2027, 3, 20, tzinfo=UTC)))["points"] == 500
    assert (await loyalty.job("birthdays", datetime(2027, 3, 21, tzinfo=UTC)))["members"] == 0
    greetings = [n for n in await loyalty.broker.events_published_by(loyalty.database, TOPIC_NOTIFICATIONS)
                 if n.data["kind"] == "birthday_greeting"]
    assert greetings == []
    for customer in (regular, vip):
        assert [(e["points"], e["reason"]) for e in await loyalty.ledger(customer) if e["kind"] == "bonus"] == [
            (500, "birthday bonus 2027")]


async def test_a_birthday_corrected_in_the_profile_moves_the_bonus_and_only_month_and_day_are_kept(loyalty):
    async with loyalty.service.client(SUPERVISOR) as http:
        programme = (await http.get("/v1/loyalty/programme")).json()["config"]
        programme["tiers"]["levels"][0]["birthday_bonus"] = 100
        assert (await http.put("/v1/loyalty/programme", json={"config": programme})).status_code == 200
    customer = new_customer_id()  # registered as born 4 March 1991
    await loyalty.publish(TOPIC_CUSTOMERS, customer_registered(customer))
    await loyalty.applied(1)
    stored = "SELECT birthday FROM accounts WHERE customer_id = $1"
    assert str(await loyalty.database.fetchval(stored, customer)) == "2000-03-04"
    await loyalty.publish(TOPIC_PROFILE, birthday_corrected(customer, 7, 15))
    await loyalty.applied(2)
    assert str(await loyalty.database.fetchval(stored, customer)) == "2000-07-15"
    assert (await loyalty.job("birthdays", datetime(2027, 3, 10, tzinfo=UTC)))["members"] == 0
    assert (await loyalty.job("birthdays", datetime(2027, 7, 1, tzinfo=UTC)))["points"] == 100
    # A day that does not exist is bad input: dead-lettered, the birthday stays.
    await loyalty.publish(TOPIC_PROFILE, birthday_corrected(customer, 2, 30))

    async def dead_lettered() -> bool:
        return await loyalty.service.metric("crm_events_dead_lettered_total") == 1
    await wait_until(dead_lettered, what="the impossible birthday dead-lettered")
    assert str(await loyalty.database.fetchval(stored, customer)) == "2000-07-15"


async def test_a_valuable_customer_turning_high_risk_gets_one_win_back_offer_per_period(loyalty):
    valuable, small = new_customer_id(), new_customer_id()
    await loyalty.orders(paid(valuable, f"o-{uuid.uuid4().hex[:6]}", "2000.00", at=NOW - timedelta(days=40)),
                         paid(small, f"o-{uuid.uuid4().hex[:6]}", "50.00", at=NOW - timedelta(days=40)))
    await loyalty.applied(2)
    await loyalty.publish(TOPIC_CHURN, churn_changed(valuable, "medium", "high", NOW),
                          churn_changed(small, "medium", "high", NOW),
                          churn_changed(valuable, "high", "medium", NOW + timedelta(days=1)),
                          churn_changed(valuable, "medium", "high", NOW + timedelta(days=2)))
    await loyalty.applied(6)
    assert (await loyalty.account(valuable))["available"] == 2000 + 500
    assert (await loyalty.account(small))["available"] == 50
    offers = await loyalty.broker.events_published_by(loyalty.database, TOPIC_NOTIFICATIONS)
    assert [(n.data["customer_id"], n.data["kind"], n.data["params"]) for n in offers] == \
        [(valuable, "win_back_offer", {"points": 500})]
    await loyalty.consistent()
