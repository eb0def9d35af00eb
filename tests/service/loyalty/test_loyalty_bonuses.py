"""Issue 20: bonus points for campaigns (POST /v1/loyalty/accounts/{id}/bonuses), once per member and
reference, on the real loyalty service, PostgreSQL and broker."""

from __future__ import annotations

import asyncio

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_LOYALTY

from tests.harness.events import customer_registered, new_customer_id
from tests.service.loyalty.conftest import SUPERVISOR, key

CAMPAIGNS = Identity(subject="svc-campaigns", role=Role.SERVICE, scopes=frozenset({"loyalty:bonus"}))
OTHER_SERVICE = Identity(subject="svc-x", role=Role.SERVICE, scopes=frozenset({"loyalty:read"}))
AGENT = Identity(subject="agent-1", role=Role.AGENT)


def bonus(reference: str, points: int = 200) -> dict:
    return {"points": points, "reason": "winter campaign bonus", "reference": reference}


async def test_a_campaign_bonus_is_credited_once_per_reference_whatever_the_idempotency_key(loyalty):
    customer, other = new_customer_id(), new_customer_id()
    await loyalty.publish(TOPIC_CUSTOMERS, customer_registered(customer), customer_registered(other))
    await loyalty.applied(2)
    url = f"/v1/loyalty/accounts/{customer}/bonuses"
    async with loyalty.service.client(CAMPAIGNS) as http:
        first = await http.post(url, json=bonus("campaign:cmp-1:2026-12-01"), headers=key())
        # A retry with another key, and two concurrent ones: the same entry, nothing credited again.
        again = await http.post(url, json=bonus("campaign:cmp-1:2026-12-01"), headers=key())
        racing = await asyncio.gather(*(http.post(url, json=bonus("campaign:cmp-1:2026-12-02", 50), headers=key())
                                        for _ in range(4)))
        # The same reference pays another member too: once per member and reference.
        theirs = await http.post(f"/v1/loyalty/accounts/{other}/bonuses", json=bonus("campaign:cmp-1:2026-12-01"),
                                 headers=key())
        unknown = await http.post(f"/v1/loyalty/accounts/{new_customer_id()}/bonuses",
                                  json=bonus("campaign:cmp-1:2026-12-01"), headers=key())
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["customer_id"], body["points"], body["reference"], body["available_after"], body["granted_by"]) == \
        (customer, 200, "campaign:cmp-1:2026-12-01", 200, "svc-campaigns")
    assert again.status_code == 201 and again.json() == body
    assert {r.status_code for r in racing} == {201} and len({r.json()["entry_id"] for r in racing}) == 1
    assert theirs.status_code == 201 and theirs.json()["customer_id"] == other
    assert unknown.status_code == 404
    assert (await loyalty.account(customer))["available"] == 250
    entries = [e for e in await loyalty.ledger(customer) if e["kind"] == "bonus"]
    assert [(e["points"], e["reason"]) for e in entries] == [(200, "winter campaign bonus"),
                                                            (50, "winter campaign bonus")]
    assert entries[0]["entry_id"] == body["entry_id"]
    earned = [e for e in await loyalty.broker.events_published_by(loyalty.database, TOPIC_LOYALTY)
              if e.type == "crm.loyalty.points.earned" and e.data["customer_id"] == customer]
    assert [(e.data["kind"], e.data["points"], e.data["available"]) for e in earned] == [("bonus", 200, 200),
                                                                                        ("bonus", 50, 250)]
    await loyalty.consistent()


async def test_only_supervisors_and_services_with_the_bonus_scope_grant_and_the_key_is_required(loyalty):
    customer = new_customer_id()
    await loyalty.publish(TOPIC_CUSTOMERS, customer_registered(customer))
    await loyalty.applied(1)
    url = f"/v1/loyalty/accounts/{customer}/bonuses"
    for identity in (AGENT, OTHER_SERVICE, Identity(subject=customer, role=Role.CUSTOMER, customer_id=customer)):
        async with loyalty.service.client(identity) as http:
            assert (await http.post(url, json=bonus("campaign:c:1"), headers=key())).status_code == 403, identity
    async with loyalty.service.client(SUPERVISOR) as http:
        assert (await http.post(url, json=bonus("campaign:c:1"))).status_code in (400, 422)  # no Idempotency-Key
        for invalid in (bonus("campaign:c:1", 0), bonus("campaign:c:1", 100_001), {**bonus("x"), "reference": ""},
                        {**bonus("campaign:c:1"), "reason": ""}, {**bonus("campaign:c:1"), "extra": 1}):
            assert (await http.post(url, json=invalid, headers=key())).status_code == 422, invalid
        granted = await http.post(url, json=bonus("campaign:c:1", 100_000), headers=key())
    assert granted.status_code == 201 and granted.json()["granted_by"] == "sup-1"
    assert (await loyalty.account(customer))["available"] == 100_000
