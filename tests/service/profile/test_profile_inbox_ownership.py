"""The inbox keys on what a producer may send: a producer allowed to write one topic cannot make
the profile skip, or apply, events of another topic's types (issue 17, item 14)."""

from __future__ import annotations

from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_INTERACTIONS

from tests.harness.events import customer_registered, interaction, new_customer_id
from tests.harness.infra import wait_until


async def _city(service, customer_id: str) -> str | None:
    async with service.client() as http:
        response = await http.get(f"/v1/profiles/{customer_id}")
    return response.json()["city"] if response.status_code == 200 else None


async def test_an_interaction_reusing_the_source_and_id_of_a_later_account_event_does_not_hide_it(
        broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    customer = new_customer_id()
    registered = customer_registered(customer).model_copy(update={"id": f"{customer}-acct-1"})
    await broker.publish(TOPIC_CUSTOMERS, [registered])
    assert await wait_until(lambda: _city(service, customer), what="registration applied") == "Shanghai"

    # A tracker (allowed to write interactions only) guesses the shop's next account event id.
    forged = interaction(customer, event_id=f"{customer}-acct-2").model_copy(update={"source": "shop/accounts"})
    await broker.publish(TOPIC_INTERACTIONS, [forged])
    await wait_until(lambda: database.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", forged.id),
                     what="the forged interaction applied")

    moved = registered.model_copy(update={
        "id": f"{customer}-acct-2", "type": "commerce.customer.updated",
        "dataschema": "https://crm.example/schemas/commerce.customer.updated/v1.json",
        "data": {**registered.data, "city": "Hangzhou"}})
    await broker.publish(TOPIC_CUSTOMERS, [moved])
    assert await wait_until(lambda: _at(service, customer, "Hangzhou"), what="the real update applied")
    rows = await database.fetch("SELECT source, event_type FROM inbox WHERE event_id = $1 ORDER BY event_type",
                                moved.id)
    assert [(r["source"], r["event_type"]) for r in rows] == [
        ("shop/accounts", "commerce.customer.updated"), ("shop/accounts", "commerce.interaction.recorded")]


async def _at(service, customer_id: str, city: str) -> bool:
    return await _city(service, customer_id) == city


async def test_an_event_on_another_topic_than_its_types_is_dead_lettered(broker, make_database, start_service):
    service = start_service("profile", make_database("profile"))
    group = f"crm-profile-{broker.namespace}"
    impostor, customer = new_customer_id(), new_customer_id()
    # A registration (with contact data and consents) written where only interactions belong.
    await broker.publish(TOPIC_INTERACTIONS, [customer_registered(impostor)])
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])

    dead = await broker.read_all(f"{TOPIC_INTERACTIONS}.{group}.dlq", expect=1)
    headers = dict((k, v.decode()) for k, v in dead[0].headers)
    assert headers["dlq.reason"] == "wrong_topic"
    assert headers["dlq.error"] == "'commerce.customer.registered' events belong on 'commerce.customers'"
    assert await wait_until(lambda: _city(service, customer), what="the registration on its topic") == "Shanghai"
    assert await _city(service, impostor) is None
    assert await service.metric("crm_events_dead_lettered_total", reason="wrong_topic") == 1
