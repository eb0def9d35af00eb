"""Adjustments above an agent's limit: the agent asks, a supervisor approves (the adjustment is made
once, as the supervisor's) or rejects; never their own request. On the real loyalty service,
PostgreSQL and broker."""

from __future__ import annotations

import asyncio

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_PROFILE
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import customer_registered, new_customer_id
from tests.service.loyalty.conftest import NOW, SUPERVISOR, key

AGENT = Identity(subject="agent-7", role=Role.AGENT)
OTHER_SUPERVISOR = Identity(subject="sup-2", role=Role.SUPERVISOR)


def asked(points: int, reason: str = "goodwill for a lost parcel") -> dict:
    return {"points": points, "reason": reason, "ticket_id": "T-42"}


async def test_an_agent_asks_above_the_limit_and_a_supervisor_approval_applies_it_once(loyalty):
    customer = new_customer_id()
    await loyalty.publish(TOPIC_CUSTOMERS, customer_registered(customer))
    await loyalty.applied(1)
    async with loyalty.service.client(AGENT) as http:
        refused = await http.post(f"/v1/loyalty/accounts/{customer}/adjustments", json=asked(2000), headers=key())
        request = await http.post(f"/v1/loyalty/accounts/{customer}/adjustment-requests", json=asked(2000),
                                  headers=key())
        second = await http.post(f"/v1/loyalty/accounts/{customer}/adjustment-requests", json=asked(900, "second"),
                                 headers=key())
        queue_as_agent = await http.get("/v1/loyalty/adjustment-requests")
        own = await http.get(f"/v1/loyalty/adjustment-requests/{request.json()['request_id']}")
    assert refused.status_code == 403, refused.text
    assert request.status_code == 201, request.text
    first = request.json()
    assert (first["status"], first["points"], first["requested_by"], first["ticket_id"], first["entry_id"]) == \
        ("pending", 2000, "agent-7", "T-42", None)
    assert queue_as_agent.status_code == 403 and own.status_code == 200 and own.json() == first
    assert (await loyalty.account(customer))["available"] == 0, "nothing moves before the approval"

    async with loyalty.service.client(SUPERVISOR) as http:
        pending = await http.get("/v1/loyalty/adjustment-requests", params={"status": "pending", "limit": 1})
        rest = await http.get("/v1/loyalty/adjustment-requests",
                              params={"status": "pending", "cursor": pending.json()["next_cursor"]})
        decision = f"/v1/loyalty/adjustment-requests/{first['request_id']}/decision"
        # Four approvals at once and one later: applied once, every answer the same decision.
        approvals = await asyncio.gather(*(http.post(decision, json={"approve": True, "note": "ok"})
                                           for _ in range(4)))
        again = await http.post(decision, json={"approve": True})
        the_other_way = await http.post(decision, json={"approve": False})
        rejected = await http.post(f"/v1/loyalty/adjustment-requests/{second.json()['request_id']}/decision",
                                   json={"approve": False, "note": "too much"})
        unknown = await http.post("/v1/loyalty/adjustment-requests/AR-999999/decision", json={"approve": True})
        malformed = await http.get("/v1/loyalty/adjustment-requests/not-a-request")
    assert [r["request_id"] for r in pending.json()["items"]] == [first["request_id"]]
    assert [r["request_id"] for r in rest.json()["items"]] == [second.json()["request_id"]]
    assert rest.json()["next_cursor"] is None
    assert {a.status_code for a in approvals} == {200}, [a.text for a in approvals]
    assert len({a.json()["entry_id"] for a in approvals}) == 1
    approved = approvals[0].json()
    assert (approved["status"], approved["decided_by"], approved["note"]) == ("approved", "sup-1", "ok")
    assert again.status_code == 200 and again.json()["entry_id"] == approved["entry_id"]
    assert the_other_way.status_code == 409
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert unknown.status_code == 404 and malformed.status_code == 404
    assert (await loyalty.account(customer))["available"] == 2000
    adjustments = [e for e in await loyalty.ledger(customer) if e["kind"] == "adjust"]
    assert [(e["entry_id"], e["points"], e["actor"]) for e in adjustments] == [(approved["entry_id"], 2000, "sup-1")]
    await loyalty.consistent()


async def test_no_one_decides_their_own_request_and_the_limits_and_erasure_hold(loyalty):
    customer = new_customer_id()
    await loyalty.publish(TOPIC_CUSTOMERS, customer_registered(customer))
    await loyalty.applied(1)
    async with loyalty.service.client(SUPERVISOR) as http:
        limit = (await http.get("/v1/loyalty/programme")).json()["config"]["adjustments"]["supervisor_limit"]
        too_big = await http.post(f"/v1/loyalty/accounts/{customer}/adjustment-requests", json=asked(limit + 1),
                                  headers=key())
        nobody = await http.post(f"/v1/loyalty/accounts/{new_customer_id()}/adjustment-requests", json=asked(10),
                                 headers=key())
        mine = (await http.post(f"/v1/loyalty/accounts/{customer}/adjustment-requests", json=asked(700),
                                headers=key())).json()
        self_approved = await http.post(f"/v1/loyalty/adjustment-requests/{mine['request_id']}/decision",
                                        json={"approve": True})
    assert too_big.status_code == 422 and nobody.status_code == 404
    assert self_approved.status_code == 403
    async with loyalty.service.client(OTHER_SUPERVISOR) as http:
        approved = await http.post(f"/v1/loyalty/adjustment-requests/{mine['request_id']}/decision",
                                   json={"approve": True})
    assert approved.status_code == 200 and approved.json()["decided_by"] == "sup-2"
    assert (await loyalty.account(customer))["available"] == 700

    # Erasure withdraws a pending request and scrubs the words written about the customer.
    async with loyalty.service.client(AGENT) as http:
        waiting = (await http.post(f"/v1/loyalty/accounts/{customer}/adjustment-requests", json=asked(600),
                                   headers=key())).json()
    await loyalty.publish(TOPIC_PROFILE, CloudEvent.new(
        type="crm.profile.customer.erased", source="crm/profile", subject=customer,
        data={"customer_id": customer, "erased_at": NOW.isoformat()}))
    await loyalty.applied(2)
    async with loyalty.service.client(SUPERVISOR) as http:
        after = (await http.get(f"/v1/loyalty/adjustment-requests/{waiting['request_id']}")).json()
        late = await http.post(f"/v1/loyalty/adjustment-requests/{waiting['request_id']}/decision",
                               json={"approve": True})
    assert after["status"] == "cancelled" and "goodwill" not in after["reason"]
    assert late.status_code == 409
