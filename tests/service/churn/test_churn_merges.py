"""Profile merges on the real churn service: the duplicate's history moves to the survivor once
and back on an unmerge; what reached the survivor since stays with it."""

from __future__ import annotations

from datetime import timedelta

from crm_shared.events.catalogue import TOPIC_INTERACTIONS, TOPIC_ORDERS, TOPIC_PROFILE
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import interaction, new_customer_id, order_event
from tests.service.churn.conftest import NOW


def profile_event(kind: str, survivor: str, duplicate: str) -> CloudEvent:
    other, at = ("merged_customer_id", "merged_at") if kind == "merged" else ("unmerged_customer_id", "unmerged_at")
    return CloudEvent.new(type=f"crm.profile.customer.{kind}", source="crm/profile", subject=survivor,
                          data={"customer_id": survivor, other: duplicate, at: NOW.isoformat()})


async def _history(churn, customer: str) -> tuple[list[str], int]:
    orders = [r["order_id"] for r in await churn.database.fetch(
        "SELECT order_id FROM churn_orders WHERE customer_id = $1 ORDER BY order_id", customer)]
    activity = await churn.database.fetchval(
        "SELECT coalesce(sum(events), 0) FROM churn_activity WHERE customer_id = $1", customer)
    return orders, activity


async def test_history_follows_a_merge_once_and_goes_back_on_an_unmerge(churn):
    keep, dup = new_customer_id(), new_customer_id()
    day = NOW - timedelta(days=3)
    await churn.broker.publish(TOPIC_ORDERS, [order_event("paid", keep, "o-keep", at=NOW - timedelta(days=40)),
                                              order_event("paid", dup, "o-dup", at=NOW - timedelta(days=10))])
    await churn.broker.publish(TOPIC_INTERACTIONS, [interaction(keep, at=day), interaction(dup, at=day),
                                                    interaction(dup, at=day)])
    await churn.applied(5)
    merge = profile_event("merged", keep, dup)
    await churn.broker.publish(TOPIC_PROFILE, [merge, merge, profile_event("merged", keep, dup)])
    await churn.applied(8)
    assert await _history(churn, keep) == (["o-dup", "o-keep"], 3)
    assert await _history(churn, dup) == ([], 0) and await churn.score(dup) is None
    assert not (await churn.score(keep))["one_time_buyer"]
    # While merged, the duplicate's id adds to the survivor's history, and that stays there.
    await churn.broker.publish(TOPIC_ORDERS, [order_event("paid", dup, "o-after", at=NOW - timedelta(days=1))])
    await churn.broker.publish(TOPIC_INTERACTIONS, [interaction(dup, at=day)])
    await churn.applied(10)
    assert await _history(churn, keep) == (["o-after", "o-dup", "o-keep"], 4)

    await churn.broker.publish(TOPIC_PROFILE, [profile_event("unmerged", keep, dup)])
    await churn.applied(11)
    assert await _history(churn, dup) == (["o-dup"], 2)
    assert await _history(churn, keep) == (["o-after", "o-keep"], 2)
    assert (await churn.score(dup))["one_time_buyer"] and not (await churn.score(keep))["one_time_buyer"]
