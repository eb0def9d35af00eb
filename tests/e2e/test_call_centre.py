"""The call centre through the gateway, with the services behind it: a phone call or chat recorded
as an interaction, a CSAT answer given on the phone, and an IVR reading a caller's order history
with an API key. Each is opened in the authorization matrix (tests/service/gateway/test_gateway_auth.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from crm_gateway.domain.interactions import event_id_for
from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_INTERACTIONS, TOPIC_ORDERS, TOPIC_TICKETS
from crm_shared.events.envelope import from_kafka

from tests.harness.events import customer_registered, new_customer_id, order_paid
from tests.harness.infra import wait_until
from tests.service.gateway.conftest import bearer


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def test_an_agent_records_a_call_and_a_chat_that_reach_the_timeline_and_the_churn_activity(
        broker, gateway_stack):
    stack = gateway_stack(upstreams=("profile", "churn"))
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    await broker.publish(TOPIC_ORDERS, [order_paid(customer, at=datetime.now(UTC) - timedelta(days=40))])  # scored
    called_at = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    chatted_at = called_at + timedelta(minutes=30)
    call = {"kind": "call", "occurred_at": called_at.isoformat(), "duration_s": 240, "ticket_id": "t-123"}
    call_key = key()
    async with stack.client(bearer("agent", "agent-7")) as agent:
        recorded = await agent.post(f"/v1/customers/{customer}/interactions", json=call, headers=call_key)
        retried = await agent.post(f"/v1/customers/{customer}/interactions", json=call, headers=call_key)
        chat = await agent.post(f"/v1/customers/{customer}/interactions", headers=key(), json={
            "kind": "chat", "occurred_at": chatted_at.isoformat(), "channel": "whatsapp", "direction": "outbound"})
        # Who recorded it is the token's subject; the body cannot name anyone, nor carry free text.
        forged = await agent.post(f"/v1/customers/{customer}/interactions", headers=key(),
                                  json={**call, "recorded_by": "agent-1"})
        with_text = await agent.post(f"/v1/customers/{customer}/interactions", headers=key(),
                                     json={**call, "summary": "asked about her parcel"})
        other_kind = await agent.post(f"/v1/customers/{customer}/interactions", headers=key(),
                                      json={**call, "kind": "cart_add"})
        future = await agent.post(f"/v1/customers/{customer}/interactions", headers=key(),
                                  json={**call, "occurred_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})
        no_key = await agent.post(f"/v1/customers/{customer}/interactions", json=call)
    async with stack.client(bearer("customer", customer)) as member:
        by_customer = await member.post(f"/v1/customers/{customer}/interactions", json=call, headers=key())

    call_id = event_id_for(Identity(subject="agent-7", role=Role.AGENT), call_key["Idempotency-Key"])
    assert recorded.status_code == 202, recorded.text
    assert recorded.json() == {"event_id": call_id, "customer_id": customer, "kind": "call", "channel": "phone",
                               "occurred_at": called_at.isoformat().replace("+00:00", "Z"),
                               "recorded_by": "agent-7"}
    assert retried.status_code == 202 and retried.json() == recorded.json()
    assert chat.status_code == 202 and chat.json()["channel"] == "whatsapp"
    assert [r.status_code for r in (forged, with_text, other_kind, future, no_key)] == [422] * 5
    assert all(r.headers["content-type"] == "application/problem+json" for r in (forged, future, no_key))
    assert by_customer.status_code == 403

    # Published once per request (the retry is the same event id), from the gateway's own source.
    events = await broker.events_published_by(stack.gateway_database, TOPIC_INTERACTIONS)
    assert [(e.id, e.source, e.subject, e.data["kind"]) for e in events] == [
        (call_id, "/crm/gateway/call-centre", customer, "call"),
        (call_id, "/crm/gateway/call-centre", customer, "call"),
        (chat.json()["event_id"], "/crm/gateway/call-centre", customer, "chat")]

    async with stack.client(bearer("agent", "agent-1")) as agent:
        async def timeline() -> list[dict]:
            answer = await agent.get(f"/v1/profiles/{customer}/timeline", params={"kind": "interaction"})
            return answer.json()["items"] if answer.status_code == 200 else []

        async def both_on_the_timeline() -> bool:
            return len(await timeline()) == 2
        await wait_until(both_on_the_timeline, timeout_s=30, what="the call and the chat on the timeline")
        entries = await timeline()

        async def scored() -> dict | None:
            answer = await agent.get(f"/v1/churn/customers/{customer}")
            return answer.json() if answer.status_code == 200 else None

        async def churn_saw_both() -> bool:
            score = await scored()
            return score is not None and score["indicators"].get("activity_30d") == 2
        await wait_until(churn_saw_both, timeout_s=30, what="churn counted both interactions")
    assert [(e["kind"], e["channel"], e["details"], e["occurred_at"]) for e in entries] == [
        ("interaction.chat", "whatsapp", {"recorded_by": "agent-7", "direction": "outbound"},
         chatted_at.isoformat().replace("+00:00", "Z")),
        ("interaction.call", "phone", {"recorded_by": "agent-7", "direction": "inbound", "duration_s": 240,
                                       "ticket_id": "t-123"}, called_at.isoformat().replace("+00:00", "Z")),
    ]
    assert [e["event_id"] for e in entries] == [chat.json()["event_id"], call_id]


async def test_an_agent_records_the_csat_answer_a_customer_gave_on_the_phone(broker, gateway_stack):
    stack = gateway_stack(upstreams=("profile", "tickets"))
    customer = new_customer_id()
    async with stack.client(bearer("agent", "agent-7")) as agent:
        opened = await agent.post("/v1/tickets", headers=key(), json={
            "customer_id": customer, "kind": "complaint", "channel": "phone", "subject": "Parcel late",
            "category": "delivery"})
        ticket_id = opened.json()["ticket_id"]
        await agent.post(f"/v1/tickets/{ticket_id}/transitions", json={"status": "resolved"})
        rated = await agent.post(f"/v1/tickets/{ticket_id}/csat", json={"score": 3, "comment": "said on the phone"})
    async with stack.client(bearer("customer", customer)) as member:
        again = await member.post(f"/v1/tickets/{ticket_id}/csat", json={"score": 5})
    assert opened.status_code == 201, opened.text
    assert rated.status_code == 201, rated.text
    assert (rated.json()["score"], rated.json()["recorded_by"]) == (3, "agent-7")
    assert again.status_code == 409

    async with stack.client(bearer("agent", "agent-1")) as agent:
        async def rating_on_the_timeline() -> list[dict]:
            answer = await agent.get(f"/v1/profiles/{customer}/timeline", params={"kind": "tickets.csat"})
            return answer.json()["items"] if answer.status_code == 200 else []
        await wait_until(rating_on_the_timeline, timeout_s=30, what="the rating on the timeline")
        entries = await rating_on_the_timeline()
    assert [(e["kind"], e["details"]["score"], e["details"]["recorded_by"]) for e in entries] == [
        ("tickets.csat.submitted", 3, "agent-7")]
    # The rating reached the profile, so the tickets service has published it: the topic to its end.
    records = await broker.read_to_end([TOPIC_TICKETS])
    events = [from_kafka(r.value, r.headers) for r in records]
    assert [(e.data["ticket_id"], e.data["score"], e.data["recorded_by"]) for e in events
            if e.type == "crm.tickets.csat.submitted"] == [(ticket_id, 3, "agent-7")]


async def test_an_ivr_reads_a_callers_order_history_with_an_api_key_and_nothing_more(broker, gateway_stack):
    stack = gateway_stack(upstreams=("profile",))
    customer = new_customer_id()
    first, second = (order_paid(customer, amount="40.00", at=datetime(2026, 10, 1, 9, tzinfo=UTC)),
                     order_paid(customer, amount="65.50", at=datetime(2026, 10, 20, 9, tzinfo=UTC)))
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    await broker.publish(TOPIC_ORDERS, [first, second])
    async with stack.client(bearer("supervisor", "sup-1")) as admin:
        ivr = (await admin.post("/v1/api-keys", json={"client": "ivr", "scopes": ["orders:read"]})).json()
        tracker = (await admin.post("/v1/api-keys",
                                    json={"client": "tracker", "scopes": ["interactions:write"]})).json()
    async with stack.client({"X-API-Key": ivr["key"]}) as phone:
        async def both_orders() -> bool:
            answer = await phone.get(f"/v1/profiles/{customer}/orders")
            return answer.status_code == 200 and len(answer.json()["items"]) == 2
        await wait_until(both_orders, timeout_s=30, what="the two orders in the history")
        history = (await phone.get(f"/v1/profiles/{customer}/orders")).json()
        profile = await phone.get(f"/v1/profiles/{customer}")
        timeline = await phone.get(f"/v1/profiles/{customer}/timeline")
        view = await phone.get(f"/v1/customers/{customer}")
    async with stack.client({"X-API-Key": tracker["key"]}) as other:
        without_scope = await other.get(f"/v1/profiles/{customer}/orders")
    assert [(o["order_id"], o["status"], o["total_amount"], o["currency"]) for o in history["items"]] == [
        (second.data["order_id"], "paid", "65.50", "CNY"), (first.data["order_id"], "paid", "40.00", "CNY")]
    assert history["next_cursor"] is None
    # The scope opens the order history only: no profile, timeline or 360.
    assert [r.status_code for r in (profile, timeline, view, without_scope)] == [403, 403, 403, 403]
    assert "orders:read" in without_scope.json()["detail"]
