"""Profile merges on the real tickets service: the duplicate's tickets move to the survivor exactly
once, and back on an unmerge; a ticket opened since for the merged id stays with the survivor."""

from __future__ import annotations

from datetime import UTC, datetime

from crm_shared.events.catalogue import TOPIC_PROFILE
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import new_customer_id
from tests.service.tickets.conftest import SUPERVISOR

NOW = datetime.now(UTC)


def profile_event(kind: str, survivor: str, duplicate: str) -> CloudEvent:
    other, at = ("merged_customer_id", "merged_at") if kind == "merged" else ("unmerged_customer_id", "unmerged_at")
    return CloudEvent.new(type=f"crm.profile.customer.{kind}", source="crm/profile", subject=survivor,
                          data={"customer_id": survivor, other: duplicate, at: NOW.isoformat()})


async def _ticket_ids(http, customer: str) -> set[str]:
    response = await http.get("/v1/tickets", params={"customer_id": customer, "limit": 50})
    assert response.status_code == 200, response.text
    return {t["ticket_id"] for t in response.json()["items"]}


async def test_tickets_follow_a_merge_once_and_go_back_on_an_unmerge(tickets):
    keep, dup = new_customer_id(), new_customer_id()
    async with tickets.service.client(SUPERVISOR) as http:
        own = (await tickets.open(http, keep))["ticket_id"]
        dups = {(await tickets.open(http, dup))["ticket_id"] for _ in range(2)}
    merge = profile_event("merged", keep, dup)
    await tickets.broker.publish(TOPIC_PROFILE, [merge, merge, profile_event("merged", keep, dup)])
    await tickets.applied(3)
    async with tickets.service.client(SUPERVISOR) as http:
        assert await _ticket_ids(http, keep) == {own, *dups}
        assert await _ticket_ids(http, dup) == set()
        # An agent opening a ticket for the merged id opens it for the survivor.
        later = await tickets.open(http, dup)
    assert later["customer_id"] == keep
    assert await tickets.database.fetchval("SELECT count(*) FROM customer_merges") == 1

    unmerge = profile_event("unmerged", keep, dup)
    await tickets.broker.publish(TOPIC_PROFILE, [unmerge, unmerge, profile_event("unmerged", keep, dup)])
    await tickets.applied(6)
    async with tickets.service.client(SUPERVISOR) as http:
        assert await _ticket_ids(http, dup) == dups
        assert await _ticket_ids(http, keep) == {own, later["ticket_id"]}
        # The id is its own again.
        assert (await tickets.open(http, dup))["customer_id"] == dup
