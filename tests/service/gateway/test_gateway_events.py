"""``POST /v1/events``: CloudEvents over HTTP, checked one by one, published exactly once."""

from __future__ import annotations

from decimal import Decimal

import orjson
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_INTERACTIONS, TOPIC_LOYALTY, TOPIC_ORDERS
from crm_shared.events.envelope import from_kafka

from tests.harness.events import customer_registered, interaction, new_customer_id, order_event, order_paid
from tests.harness.infra import Database, wait_until
from tests.service.gateway.conftest import bearer

TRACKER = bearer("service", "storefront", scopes=("interactions:write",), client="storefront-tracker")
BACK_OFFICE = bearer("service", "shop-backend", scopes=("interactions:write", "orders:write", "customers:write"))


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
    async with stack.client(BACK_OFFICE) as http:
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


def _nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def test_an_event_larger_than_a_kafka_record_refuses_the_batch_and_stores_nothing(broker, gateway_stack):
    stack = gateway_stack(upstreams=())
    customer = new_customer_id()
    small = interaction(customer)
    huge = interaction(customer).to_structured()
    huge["data"]["padding"] = [1e15] * 200_000  # "1e15" is 4 bytes here, 18 once written back
    body = orjson.dumps([small.to_structured(), huge]).replace(b"1000000000000000.0", b"1e15")
    assert len(body) < 1_048_576  # within MAX_BODY_BYTES: only the record it becomes is too large
    async with stack.client(BACK_OFFICE) as http:
        refused = await http.post("/v1/events", content=body, headers={"content-type": "application/json"})
        assert refused.status_code == 413, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["index"] == 1 and problem["limit"] == 1_000_000
        assert "nothing of this batch was stored" in problem["detail"]
        assert await stack.gateway_database.fetchval("SELECT count(*) FROM outbox") == 0

        # Ingest goes on: the next batch is accepted and published, and only it.
        after = interaction(customer)
        assert (await http.post("/v1/events", json=[after.to_structured()])).json()["accepted"] == [after.id]
    published = await broker.events_published_by(stack.gateway_database, TOPIC_INTERACTIONS)
    assert [e.id for e in published] == [after.id]


async def test_deep_or_large_interaction_attributes_are_rejected_one_by_one(broker, gateway_stack):
    stack = gateway_stack(upstreams=())
    customer = new_customer_id()
    good = interaction(customer, attributes={"sku": "SKU-1", "filters": {"colour": ["red"]}})
    batch = [good.to_structured(), interaction(customer, attributes=_nested(255)).to_structured(),
             interaction(customer, attributes={"review": "x" * 40_000}).to_structured()]
    async with stack.client(TRACKER) as http:
        response = await http.post("/v1/events", json=batch)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": [good.id], "rejected": [
        {"index": 1, "id": batch[1]["id"], "reason": "data.attributes: nested deeper than 8 levels"},
        {"index": 2, "id": batch[2]["id"], "reason": "data.attributes: larger than 32768 bytes as JSON"}]}
    published = await broker.events_published_by(stack.gateway_database, TOPIC_INTERACTIONS)
    assert [e.id for e in published] == [good.id]


async def test_a_customer_reusing_the_ids_of_later_shop_events_cannot_make_the_services_skip_them(
        broker, gateway_stack):
    """The exploit of issue 17, item 14, end to end: a shopper posts interactions under the source
    and ids of the shop's next account update and refund; profile and churn still apply both."""
    stack = gateway_stack(upstreams=("profile", "churn"))
    profile_db, churn_db = (Database(stack.upstreams[n].env["DATABASE_URL"]) for n in ("profile", "churn"))
    customer = new_customer_id()
    registered = customer_registered(customer)
    paid = order_event("paid", customer, f"o-{customer}", amount="80.00")
    await broker.publish(TOPIC_CUSTOMERS, [registered])
    await broker.publish(TOPIC_ORDERS, [paid])
    update_id, refund_id = f"{registered.id}-next", f"{paid.id}-refund"

    forged = [interaction(customer, event_id=update_id).model_copy(update={"source": registered.source}),
              interaction(customer, event_id=refund_id).model_copy(update={"source": paid.source})]
    async with stack.client(bearer("customer", customer)) as http:
        answer = await http.post("/v1/events", json=[e.to_structured() for e in forged])
    assert answer.json()["accepted"] == [update_id, refund_id]
    own_source = f"/crm/gateway/customers/{customer}"
    for database in (profile_db, churn_db):  # applied, under the caller's own source
        await wait_until(lambda db=database: _sources_of(db, refund_id), what="the forged interactions applied")
        assert await _sources_of(database, update_id) == [own_source]
        assert await _sources_of(database, refund_id) == [own_source]

    updated = registered.model_copy(update={
        "id": update_id, "type": "commerce.customer.updated",
        "dataschema": "https://crm.example/schemas/commerce.customer.updated/v1.json",
        "data": {**registered.data, "city": "Hangzhou"}})
    refunded = order_event("refunded", customer, f"o-{customer}", amount="80.00", refund_amount="80.00",
                           event_id=refund_id)
    await broker.publish(TOPIC_CUSTOMERS, [updated])
    await broker.publish(TOPIC_ORDERS, [refunded])
    async with stack.client(bearer("agent", "agent-1")) as http:
        await wait_until(lambda: _city_is(http, customer, "Hangzhou"), what="the real update applied by profile")
    await wait_until(lambda: _refunded(churn_db, paid.data["order_id"]), what="the real refund applied by churn")
    assert await _refunded(churn_db, paid.data["order_id"]) == Decimal("80.00")


async def _sources_of(database: Database, event_id: str) -> list[str]:
    return await database.fetch_texts("SELECT source FROM inbox WHERE event_id = $1 ORDER BY source", event_id)


async def _city_is(http, customer: str, city: str) -> bool:
    response = await http.get(f"/v1/profiles/{customer}")
    return response.status_code == 200 and response.json()["city"] == city


async def _refunded(database: Database, order_id: str) -> Decimal | None:
    return await database.fetchval("SELECT refunded_amount FROM churn_orders WHERE order_id = $1 "
                                   "AND refunded_amount > 0", order_id)
