"""Profile merges on the real loyalty service: the duplicate's points, lots, orders and tier move to
the survivor exactly once, and an unmerge moves them back and settles what the survivor spent."""

from __future__ import annotations

from datetime import timedelta

from crm_shared.events.catalogue import TOPIC_LOYALTY, TOPIC_PROFILE
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import new_customer_id, order_event
from tests.service.loyalty.conftest import NOW, paid


def merged(survivor: str, duplicate: str) -> CloudEvent:
    return CloudEvent.new(type="crm.profile.customer.merged", source="crm/profile", subject=survivor,
                          data={"customer_id": survivor, "merged_customer_id": duplicate,
                                "merged_at": NOW.isoformat()})


def unmerged(survivor: str, duplicate: str) -> CloudEvent:
    return CloudEvent.new(type="crm.profile.customer.unmerged", source="crm/profile", subject=survivor,
                          data={"customer_id": survivor, "unmerged_customer_id": duplicate,
                                "unmerged_at": (NOW + timedelta(minutes=5)).isoformat()})


def balances(account: dict) -> tuple[int, int, int, int]:
    return account["available"], account["pending"], account["debt"], account["lifetime_earned"]


async def test_a_merge_moves_the_points_once_and_an_unmerge_settles_what_the_survivor_spent(loyalty):
    keep, dup = new_customer_id(), new_customer_id()
    await loyalty.orders(paid(keep, "o-keep", "200.00", at=NOW - timedelta(days=30)))  # 200 available
    await loyalty.applied(1)
    await loyalty.orders(paid(dup, "o-dup-1", "500.00", at=NOW - timedelta(days=30)),  # 500 available
                         paid(dup, "o-dup-2", "100.00", at=NOW - timedelta(days=1)))   # 100 pending
    await loyalty.applied(3)
    # The merge arrives, is redelivered (same id) and sent again under another id: applied once.
    merge = merged(keep, dup)
    await loyalty.publish(TOPIC_PROFILE, merge, merge, merged(keep, dup))
    await loyalty.applied(6)
    assert balances(await loyalty.account(keep)) == (700, 100, 0, 800)
    assert balances(await loyalty.account(dup)) == (0, 0, 0, 0)
    assert [(e["kind"], e["points"]) for e in await loyalty.ledger(dup)][-1] == ("merge", -600)
    assert [(e["kind"], e["points"]) for e in await loyalty.ledger(keep)][-1] == ("merge", 600)
    assert await loyalty.database.fetchval("SELECT count(*) FROM customer_merges") == 1
    await loyalty.consistent()

    # The survivor spends 300: its own 200 first (same expiry, older lot), then 100 of the duplicate's.
    async with loyalty.service.client() as http:
        spent = await loyalty.redeem(http, keep, 300)
    assert spent.status_code == 201, spent.text
    # While merged, the duplicate's id earns for the survivor, and a refund of its old order
    # takes back from the survivor's account.
    await loyalty.orders(paid(dup, "o-after-merge", "300.00", at=NOW - timedelta(days=30)),
                         order_event("refunded", dup, "o-dup-2", amount="100.00", refund_amount="100.00", at=NOW))
    await loyalty.applied(8)
    assert balances(await loyalty.account(keep)) == (700, 0, 0, 1000)
    assert balances(await loyalty.account(dup)) == (0, 0, 0, 0)
    await loyalty.consistent()

    await loyalty.publish(TOPIC_PROFILE, unmerged(keep, dup))
    await loyalty.applied(9)
    # The duplicate is made whole: 600 brought, 100 reversed by its own refund = 500, as its lot's
    # 400 left and 100 the survivor spent. The survivor pays those 100 from its own points and keeps
    # the rest, including what it earned after the merge (the lot stays on its account).
    assert balances(await loyalty.account(dup)) == (500, 0, 0, 500)
    assert balances(await loyalty.account(keep)) == (200, 0, 0, 500)
    assert [(e["kind"], e["points"]) for e in await loyalty.ledger(dup)][-1] == ("unmerge", 500)
    assert [(e["kind"], e["points"]) for e in await loyalty.ledger(keep)][-1] == ("unmerge", -500)
    owners = {row["order_id"]: row["customer_id"] for row in await loyalty.database.fetch(
        "SELECT order_id, customer_id FROM orders")}
    assert owners == {"o-keep": keep, "o-dup-1": dup, "o-dup-2": dup, "o-after-merge": keep}
    await loyalty.consistent()

    # A refund of the post-merge order, still sent under the duplicate's id, hits the account that
    # holds the order; the survivor owes what it no longer has, and the duplicate is untouched.
    await loyalty.orders(order_event("refunded", dup, "o-after-merge", amount="300.00", refund_amount="300.00",
                                     at=NOW))
    await loyalty.applied(10)
    assert balances(await loyalty.account(keep)) == (0, 0, 100, 200)
    assert balances(await loyalty.account(dup)) == (500, 0, 0, 500)
    await loyalty.consistent()


async def test_a_debt_the_survivor_paid_off_goes_back_with_the_duplicate(loyalty):
    keep, dup = new_customer_id(), new_customer_id()
    await loyalty.orders(paid(keep, "o-keep", "300.00", at=NOW - timedelta(days=30)),
                         paid(dup, "o-dup", "100.00", at=NOW - timedelta(days=30)))
    await loyalty.applied(2)
    async with loyalty.service.client() as http:
        assert (await loyalty.redeem(http, dup, 100)).status_code == 201
    await loyalty.orders(order_event("refunded", dup, "o-dup", amount="100.00", refund_amount="100.00", at=NOW))
    await loyalty.applied(3)
    assert balances(await loyalty.account(dup)) == (0, 0, 100, 0)
    # The merge pays the duplicate's debt from the survivor's points at once.
    await loyalty.publish(TOPIC_PROFILE, merged(keep, dup))
    await loyalty.applied(4)
    assert balances(await loyalty.account(keep)) == (200, 0, 0, 300)
    # Redelivered and sent again under another id, the unmerge is applied once too.
    unmerge = unmerged(keep, dup)
    await loyalty.publish(TOPIC_PROFILE, unmerge, unmerge, unmerged(keep, dup))
    await loyalty.applied(7)
    assert balances(await loyalty.account(keep)) == (300, 0, 0, 300)
    assert balances(await loyalty.account(dup)) == (0, 0, 100, 0)
    await loyalty.consistent()


async def test_the_survivor_takes_the_duplicates_tier_and_gives_it_back(loyalty):
    keep, dup = new_customer_id(), new_customer_id()
    await loyalty.orders(paid(keep, "o-keep", "100.00", at=NOW - timedelta(days=30)),
                         *(paid(dup, f"o-dup-{n}", "1000.00", at=NOW - timedelta(days=40 + n)) for n in range(5)))
    await loyalty.applied(6)
    assert ((await loyalty.account(keep))["tier"], (await loyalty.account(dup))["tier"]) == ("regular", "vip")
    await loyalty.publish(TOPIC_PROFILE, merged(keep, dup))
    await loyalty.applied(7)
    assert (await loyalty.account(keep))["tier"] == "vip"
    await loyalty.publish(TOPIC_PROFILE, unmerged(keep, dup))
    await loyalty.applied(8)
    assert ((await loyalty.account(keep))["tier"], (await loyalty.account(dup))["tier"]) == ("regular", "vip")
    changes = [(e.data["customer_id"], e.data["old_tier"], e.data["new_tier"])
               for e in await loyalty.broker.events_published_by(loyalty.database, TOPIC_LOYALTY)
               if e.type == "crm.loyalty.tier.changed"]
    # Per customer (one key, one partition: in order); the topic's partitions are read one by one.
    # Each account announces its entry tier; the survivor takes the duplicate's tier and gives it back.
    assert [c for c in changes if c[0] == keep] == [(keep, None, "regular"), (keep, "regular", "vip"),
                                                     (keep, "vip", "regular")]
    assert [c for c in changes if c[0] == dup] == [(dup, None, "regular"), (dup, "regular", "vip")]
    await loyalty.consistent()


async def test_points_spent_on_an_order_from_the_duplicates_lots_come_back_to_the_survivor(loyalty):
    keep, dup = new_customer_id(), new_customer_id()
    await loyalty.orders(paid(dup, "o-dup", "400.00", at=NOW - timedelta(days=30)))
    await loyalty.applied(1)
    await loyalty.publish(TOPIC_PROFILE, merged(keep, dup))
    await loyalty.applied(2)
    # The survivor pays part of an order with the duplicate's points, then the merge is undone:
    # the survivor owes those 300 (it has nothing else: debt).
    async with loyalty.service.client() as http:
        discount = await loyalty.redeem(http, keep, 300, kind="order_discount", order_id="o-new", currency="CNY")
    assert discount.status_code == 201, discount.text
    await loyalty.publish(TOPIC_PROFILE, unmerged(keep, dup))
    await loyalty.applied(3)
    assert balances(await loyalty.account(dup)) == (400, 0, 0, 400)
    assert balances(await loyalty.account(keep)) == (0, 0, 300, 0)
    # The order is cancelled: the 300 come back to the survivor, which paid for them (its debt),
    # not into the duplicate's lots they were first taken from.
    await loyalty.orders(order_event("cancelled", keep, "o-new", amount="80.00", at=NOW))
    await loyalty.applied(4)
    assert balances(await loyalty.account(keep)) == (0, 0, 0, 0)
    assert balances(await loyalty.account(dup)) == (400, 0, 0, 400)
    await loyalty.consistent()
