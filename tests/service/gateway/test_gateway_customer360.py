"""The customer 360 from the real services, whole and with services down, hung or absent."""

from __future__ import annotations

import time
import uuid

from crm_shared.events.catalogue import TOPIC_CHURN, TOPIC_CUSTOMERS, TOPIC_ORDERS
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import customer_registered, new_customer_id, order_paid
from tests.harness.infra import wait_until
from tests.service.gateway.conftest import CAMPAIGNS_INSTALLED, bearer


async def _with_order(http, customer: str):
    response = await http.get(f"/v1/customers/{customer}")
    if response.status_code == 200 and (response.json()["profile"].get("data") or {}).get("order_count") == 1:
        return response
    return None


async def test_the_360_has_every_part_and_degrades_within_budget_when_services_fail(
        broker, gateway_stack, campaigns_stand_in):
    # The campaigns service where it is installed, else a stand-in holding the customer's contacts.
    stack = gateway_stack(CUSTOMER360_BUDGET_S="0.5", **({} if CAMPAIGNS_INSTALLED else campaigns_stand_in.env))
    customer = new_customer_id()
    contact = {"campaign_id": "cmp-1", "campaign_name": "Winter sale", "channel": "email", "group": "treatment",
               "status": "delivered", "contacted_at": "2026-11-30T09:00:00Z"}
    campaigns_stand_in.contacts[customer] = [contact]
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    await broker.publish(TOPIC_ORDERS, [order_paid(customer, amount="42.00")])
    async with stack.client(bearer("agent", "agent-1")) as http:
        whole = (await wait_until(lambda: _with_order(http, customer), what="order in the 360")).json()
        assert whole["complete"] is True
        assert whole["profile"]["data"]["total_spent"] == {"CNY": "42.00"}
        # The other services hold nothing for this customer yet, and say so.
        assert {whole[p]["status"] for p in ("loyalty", "open_tickets", "churn")} <= {"ok", "not_found"}
        assert whole["campaign_contacts"]["status"] == "ok"
        if not CAMPAIGNS_INSTALLED:
            assert whole["campaign_contacts"]["data"] == {"items": [contact]}
            asked = [r for r in campaigns_stand_in.received if r.path == "/v1/campaign-contacts"][-1]
            assert (asked.query, asked.identity.role) == (f"customer_id={customer}&limit=10", "agent")

        stack.upstreams["churn"].pause()      # hung: accepts connections, never answers
        stack.upstreams["loyalty"].kill()     # down: connections refused
        try:
            started = time.monotonic()
            degraded = await http.get(f"/v1/customers/{customer}")
            elapsed = time.monotonic() - started
        finally:
            stack.upstreams["churn"].resume()
    assert degraded.status_code == 200
    body = degraded.json()
    assert elapsed < 1.0, elapsed  # the 0.5 s budget, not the services' timeouts
    assert body["complete"] is False
    assert body["profile"]["status"] == "ok" and body["profile"]["data"]["order_count"] == 1
    assert body["churn"]["status"] == "unavailable" and body["churn"]["reason"]
    assert body["loyalty"]["status"] == "unavailable"


async def test_without_the_campaigns_service_the_360_marks_its_part_unavailable(broker, gateway_stack):
    stack = gateway_stack(upstreams=("profile",), CUSTOMER360_BUDGET_S="0.5")  # nothing at CAMPAIGNS_URL
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    async with stack.client(bearer("agent", "agent-1")) as http:
        await wait_until(lambda: _profile_ok(http, customer), what="customer in the 360")
        staff = (await http.get(f"/v1/customers/{customer}")).json()
    async with stack.client(bearer("customer", customer)) as http:
        own = (await http.get(f"/v1/customers/{customer}")).json()
    assert staff["profile"]["status"] == "ok" and staff["complete"] is False
    assert staff["campaign_contacts"]["status"] == "unavailable" and "campaigns" in staff["campaign_contacts"]["reason"]
    # A customer's own 360 never asks for their campaign contacts: not theirs to see, not a failure.
    assert own["campaign_contacts"] == {"status": "forbidden", "data": None,
                                        "reason": "this caller may not see this part"}


async def _profile_ok(http, customer: str):
    response = await http.get(f"/v1/customers/{customer}")
    return response if response.status_code == 200 and response.json()["profile"]["status"] == "ok" else None


async def test_a_customer_unknown_everywhere_is_a_404_and_other_customers_are_forbidden(gateway_stack):
    stack = gateway_stack()
    async with stack.client(bearer("agent", "agent-1")) as http:
        unknown = await http.get("/v1/customers/nobody-at-all")
    async with stack.client(bearer("customer", "c-a")) as http:
        other = await http.get("/v1/customers/c-b")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    assert other.status_code == 403


async def test_a_customers_own_360_leaves_out_the_shops_judgement_of_them_and_staff_see_it(broker, gateway_stack):
    stack = gateway_stack(upstreams=("profile", "tickets"))
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    await broker.publish(TOPIC_CHURN, [CloudEvent.new(
        type="crm.churn.risk.changed", source="crm/churn", subject=customer,
        data={"customer_id": customer, "old_level": "low", "new_level": "high", "score": 0.8, "reasons": [],
              "model_version": "m-1", "scored_at": "2026-11-01T12:00:00+00:00"})])
    async with stack.client(bearer("agent", "agent-1")) as agent:
        async def copied() -> bool:
            answer = await agent.get(f"/v1/profiles/{customer}")
            return answer.status_code == 200 and answer.json()["churn_level"] == "high"
        await wait_until(copied, what="the churn level in the profile")
        assert (await agent.patch(f"/v1/profiles/{customer}", json={"tags": ["difficult"]})).status_code == 200
    # The tickets service keeps a copy of the level too, and stamps it on the tickets opened after.
    async def tickets_copied() -> bool:
        return await stack.upstreams["tickets"].metric("crm_events_applied_total",
                                                       type="crm.churn.risk.changed") == 1
    await wait_until(tickets_copied, what="the churn level in the tickets service")
    async with stack.client(bearer("customer", customer)) as member:
        answer = await member.post("/v1/tickets", headers={"Idempotency-Key": str(uuid.uuid4())}, json={
            "customer_id": customer, "kind": "enquiry", "channel": "web", "subject": "Where is it?"})
        assert answer.status_code == 201, answer.text
        opened = answer.json()
        own = (await member.get(f"/v1/customers/{customer}")).json()
        own_ticket = (await member.get(f"/v1/tickets/{opened['ticket_id']}")).json()
    async with stack.client(bearer("agent", "agent-1")) as agent:
        staff = (await agent.get(f"/v1/customers/{customer}")).json()
        staff_ticket = (await agent.get(f"/v1/tickets/{opened['ticket_id']}")).json()
    profile, tickets = own["profile"]["data"], own["open_tickets"]["data"]["items"]
    assert (profile["churn_level"], profile["tags"], profile["segments"], profile["rfm"]) == (None, [], [], None)
    assert [t["churn_level"] for t in tickets] == [None]
    assert opened["churn_level"] is None and own_ticket["churn_level"] is None
    assert (staff["profile"]["data"]["churn_level"], staff["profile"]["data"]["tags"]) == ("high", ["difficult"])
    assert [t["churn_level"] for t in staff["open_tickets"]["data"]["items"]] == [staff_ticket["churn_level"]]
    assert staff_ticket["churn_level"] == "high"
