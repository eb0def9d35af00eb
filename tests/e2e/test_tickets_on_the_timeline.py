"""Tickets and profile together through the broker; tickets behind the gateway with the 360."""

from __future__ import annotations

import uuid

from tests.harness.events import new_customer_id
from tests.harness.infra import wait_until
from tests.service.gateway.conftest import bearer


async def test_a_ticket_reaches_the_profile_timeline_and_the_360(broker, gateway_stack):
    stack = gateway_stack(upstreams=("profile", "tickets"))
    customer = new_customer_id()
    async with stack.client(bearer("customer", customer)) as member:
        opened = await member.post("/v1/tickets", json={
            "customer_id": customer, "kind": "complaint", "channel": "app", "subject": "Broken mug",
            "category": "product_quality"}, headers={"Idempotency-Key": str(uuid.uuid4())})
        foreign = await member.get("/v1/tickets", params={"customer_id": new_customer_id()})
    assert opened.status_code == 201, opened.text
    assert foreign.status_code == 403
    ticket_id = opened.json()["ticket_id"]
    async with stack.client(bearer("agent", "agent-1")) as agent:
        resolved = await agent.post(f"/v1/tickets/{ticket_id}/transitions",
                                    json={"status": "resolved", "root_cause": "packaging"})
        assert resolved.status_code == 200

        async def on_timeline() -> bool:
            answer = await agent.get(f"/v1/profiles/{customer}/timeline")
            kinds = [e["kind"] for e in answer.json().get("items", [])] if answer.status_code == 200 else []
            return {"tickets.ticket.opened", "tickets.ticket.resolved"} <= set(kinds)
        await wait_until(on_timeline, timeout_s=30, what="ticket events on the timeline")
        entries = (await agent.get(f"/v1/profiles/{customer}/timeline", params={"kind": "tickets"})).json()["items"]
        view = (await agent.get(f"/v1/customers/{customer}")).json()
    assert {e["details"]["ticket_id"] for e in entries} == {ticket_id}
    assert [e["details"].get("root_cause") for e in entries if e["kind"] == "tickets.ticket.resolved"] == ["packaging"]
    # The 360's tickets part lists active tickets: this one is resolved.
    assert view["open_tickets"]["status"] == "ok" and view["open_tickets"]["data"]["items"] == []
