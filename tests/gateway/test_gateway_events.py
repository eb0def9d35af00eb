"""``POST /v1/events``: CloudEvents over HTTP, checked one by one, published exactly once."""

from __future__ import annotations

from crm_shared.events.catalogue import TOPIC_INTERACTIONS, TOPIC_LOYALTY, TOPIC_ORDERS
from crm_shared.events.envelope import from_kafka

from tests.gateway.conftest import bearer
from tests.harness.events import interaction, new_customer_id, order_paid
from tests.harness.infra import wait_until

TRACKER = bearer("service", "storefront", scopes=("events:write",), client="storefront-tracker")


async def _order_count(http, customer: str) -> int | None:
    response = await http.get(f"/v1/profiles/{customer}")
    return response.json()["order_count"] if response.status_code == 200 else None


async def test_a_mixed_batch_publishes_exactly_the_valid_events(broker, gateway_stack):
    stack = gateway_stack(upstreams=("profile",))
    customer = new_customer_id()
    view, paid = interaction(customer), order_paid(customer, amount="19.90")
    broken = order_paid(customer).to_structured()
    broken["data"]["total_amount"] = -5
    batch = [view.to_structured(), {"type": "commerce.order.paid"}, paid.to_structured(), broken,
             {**interaction(customer).to_structured(), "type": "crm.loyalty.points.earned"}]
    async with stack.client(TRACKER) as http:
        response = await http.post("/v1/events", json=batch,
                                   headers={"content-type": "application/cloudevents-batch+json"})
        assert response.status_code == 202
        result = response.json()
        assert result["accepted"] == [view.id, paid.id]
        assert [r["index"] for r in result["rejected"]] == [1, 3, 4]
        assert all(r["reason"] for r in result["rejected"])

        # Exactly the accepted events reach Kafka, keyed by customer, in binary mode.
        # Once the gateway's outbox is relayed, the topics' ends are final.
        orders = await broker.events_published_by(stack.gateway_database, TOPIC_ORDERS)
        views = await broker.read_to_end([TOPIC_INTERACTIONS])
        assert [e.id for e in orders] == [paid.id]
        assert [from_kafka(r.value, r.headers).id for r in views] == [view.id]
        assert views[0].key == customer.encode()
        assert await broker.read_to_end([TOPIC_LOYALTY]) == []  # no forged crm.* event

        # Sending the same batch again (a client retry) is applied once by the services.
        assert (await http.post("/v1/events", json=batch)).status_code == 202
    async with stack.client(bearer("agent", "agent-1")) as http:
        await wait_until(lambda: _order_count(http, customer), what="order applied")
        await wait_until(lambda: stack.upstreams["profile"].metric_at_least(1, "crm_events_duplicate_total"),
                         what="the resent order seen as a duplicate")
        assert await _order_count(http, customer) == 1


async def test_malformed_batches_are_problems(gateway_stack):
    stack = gateway_stack(upstreams=(), EVENTS_BATCH_MAX="3")
    customer = new_customer_id()
    async with stack.client(TRACKER) as http:
        not_json = await http.post("/v1/events", content=b"{not json", headers={"content-type": "application/json"})
        empty = await http.post("/v1/events", json=[])
        too_many = await http.post("/v1/events", json=[interaction(customer).to_structured() for _ in range(4)])
        single = await http.post("/v1/events", json=interaction(customer).to_structured(),
                                 headers={"content-type": "application/cloudevents+json"})
    assert not_json.status_code == 400 and empty.status_code == 422 and too_many.status_code == 413
    for response in (not_json, empty, too_many):
        assert response.headers["content-type"] == "application/problem+json"
    assert single.status_code == 202 and len(single.json()["accepted"]) == 1
