"""Profile and loyalty together, through the broker: points and tiers reach the agent's timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS, TOPIC_PROFILE

from tests.harness.events import customer_registered, new_customer_id, order_event
from tests.harness.infra import wait_until


async def test_points_earned_and_reversed_appear_on_the_profile_timeline(broker, make_database, start_service):
    profile, loyalty = start_service.together([(name, make_database(name), {}) for name in ("profile", "loyalty")])
    customer = new_customer_id()
    paid_at = datetime.now(UTC) - timedelta(days=2)
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    await broker.publish(TOPIC_ORDERS, [
        order_event("paid", customer, "o-e2e", amount="6000.00", at=paid_at),
        order_event("refunded", customer, "o-e2e", amount="6000.00", refund_amount="1500.00",
                    at=paid_at + timedelta(days=1))])

    async def timeline() -> list[dict]:
        async with profile.client() as http:
            return (await http.get(f"/v1/profiles/{customer}/timeline", params={"limit": 50})).json()["items"]

    async def has_points() -> bool:
        kinds = {entry["kind"] for entry in await timeline()}
        return {"loyalty.points.earned", "loyalty.points.reversed"} <= kinds

    await wait_until(has_points, timeout_s=30, what="points on the timeline")
    entries = {entry["kind"]: entry for entry in await timeline()}
    assert entries["loyalty.points.earned"]["details"]["points"] == 6000
    assert entries["loyalty.points.reversed"]["details"]["points"] == -1500
    assert entries["loyalty.points.reversed"]["details"]["order_id"] == "o-e2e"
    async with loyalty.client() as http:
        assert (await http.get(f"/v1/loyalty/accounts/{customer}")).json()["pending"] == 4500


async def test_a_new_member_s_tier_reaches_the_profile_and_a_corrected_birthday_reaches_loyalty(
        broker, make_database, start_service):
    """Issue 17: the profile showed no tier for a new member (item 4), and a birthday an agent
    corrected in the profile never reached the loyalty service's birthday job (item 3)."""
    profile_db, loyalty_db = make_database("profile"), make_database("loyalty")
    profile, loyalty = start_service.together([("profile", profile_db, {}), ("loyalty", loyalty_db, {})])
    customer = new_customer_id()  # registered as born 4 March 1991
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])

    async def tier_copied() -> bool:
        async with profile.client() as http:
            return (await http.get(f"/v1/profiles/{customer}")).json().get("tier") == "regular"
    await wait_until(tier_copied, timeout_s=30, what="the entry tier on the profile")

    async with profile.client() as http:
        corrected = await http.patch(f"/v1/profiles/{customer}", json={"birthday": "1991-07-15"})
        same_day = await http.patch(f"/v1/profiles/{customer}", json={"birthday": "1990-07-15", "city": "Suzhou"})
    assert (corrected.status_code, same_day.status_code) == (200, 200)
    stored = "SELECT birthday FROM accounts WHERE customer_id = $1"

    async def reached_loyalty() -> bool:
        return str(await loyalty_db.fetchval(stored, customer)) == "2000-07-15"
    await wait_until(reached_loyalty, timeout_s=30, what="the corrected birthday in loyalty")
    # Month and day only, once (the second edit kept the day): no year, no other PII on the bus.
    corrections = [e for e in await broker.events_published_by(profile_db, TOPIC_PROFILE)
                   if e.type == "crm.profile.customer.birthday_changed"]
    assert [sorted(e.data) for e in corrections] == [["changed_at", "customer_id", "day", "month"]]
    assert (corrections[0].data["customer_id"], corrections[0].data["month"], corrections[0].data["day"]) == \
        (customer, 7, 15)
    async with loyalty.client(Identity(subject="sup-1", role=Role.SUPERVISOR)) as http:
        # The birthday job grants the tier's bonus (the greeting is the campaigns service's since issue 20).
        programme = (await http.get("/v1/loyalty/programme")).json()["config"]
        programme["tiers"]["levels"][0]["birthday_bonus"] = 100
        assert (await http.put("/v1/loyalty/programme", json={"config": programme})).status_code == 200
        march = await http.post("/v1/loyalty/jobs/birthdays", params={"as_of": "2027-03-10T00:00:00+00:00"})
        july = await http.post("/v1/loyalty/jobs/birthdays", params={"as_of": "2027-07-10T00:00:00+00:00"})
    assert (march.json()["members"], july.json()["members"]) == (0, 1)
