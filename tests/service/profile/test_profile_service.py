"""Profile service on the real PostgreSQL and broker, run as a real process."""

from __future__ import annotations

import orjson
from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS, TOPIC_PROFILE
from crm_shared.events.envelope import from_kafka

from tests.harness.events import customer_registered, new_customer_id, order_paid
from tests.harness.infra import publish_raw, wait_until


async def _profile(service, customer_id: str):
    async with service.client() as http:
        response = await http.get(f"/v1/profiles/{customer_id}")
    return response.json() if response.status_code == 200 else None


async def _order_count_is(service, customer_id: str, count: int):
    profile = await _profile(service, customer_id)
    return profile if profile and profile["order_count"] == count else None


async def test_an_order_published_to_kafka_shows_in_the_profile(broker, make_database, start_service):
    service = start_service("profile", make_database("profile"))
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer, email="Mei.Chen@Example.COM")])
    await broker.publish(TOPIC_ORDERS, [order_paid(customer, amount="1299.00"),
                                        order_paid(customer, amount="0.50", currency="EUR")])

    masked = await wait_until(lambda: _order_count_is(service, customer, 2), what="two orders applied")
    assert masked["pii"] == "masked" and masked["email"] == "m*******@example.com"  # an agent, by default

    async with service.client(Identity(subject=customer, role=Role.CUSTOMER, customer_id=customer)) as http:
        profile = (await http.get(f"/v1/profiles/{customer}")).json()  # the customer sees their own data
    assert profile["pii"] == "clear"
    assert profile["email"] == "mei.chen@example.com"
    assert profile["phone"] == "+8613800138000"
    assert profile["total_spent"] == {"CNY": "1299.00", "EUR": "0.50"}
    assert profile["consents"]["email"]["granted"] is True and profile["consents"]["sms"]["granted"] is False
    assert profile["consents"]["email"]["source"] == "shop/accounts"
    assert profile["first_order_at"] == "2026-11-01T12:00:00Z"


async def test_unknown_customer_is_a_404_problem(broker, make_database, start_service):
    service = start_service("profile", make_database("profile"))
    async with service.client() as http:
        response = await http.get("/v1/profiles/nobody")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404 and body["title"] == "Not found" and "nobody" in body["detail"]


async def test_the_same_event_delivered_twice_changes_nothing(broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    customer = new_customer_id()
    paid = order_paid(customer, amount="88.00")
    # The same event twice, plus the same order under a new event id (a publisher's replay).
    replay = order_paid(customer, order_id=paid.data["order_id"], amount="88.00")
    await broker.publish(TOPIC_ORDERS, [paid, paid])
    await wait_until(lambda: _order_count_is(service, customer, 1), what="first delivery applied")
    await broker.publish(TOPIC_ORDERS, [paid, replay])
    await wait_until(lambda: service.metric("crm_events_duplicate_total"), what="duplicates counted")
    await wait_until(lambda: service.metric_at_least(2, "crm_events_applied_total", type="commerce.order.paid"),
                     what="replay processed")

    profile = await _profile(service, customer)
    assert profile["order_count"] == 1
    assert profile["total_spent"] == {"CNY": "88.00"}
    assert await database.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", paid.id) == 1
    assert await service.metric("crm_events_duplicate_total") == 2


async def test_bad_records_are_dead_lettered_and_the_consumer_goes_on(broker, make_database, start_service):
    service = start_service("profile", make_database("profile"))
    group = f"crm-profile-{broker.namespace}"
    customer = new_customer_id()
    # 1) not JSON, 2) an unknown event type, 3) a known type with invalid data (float money).
    await publish_raw(broker, TOPIC_ORDERS, customer.encode(), b"{not json",
                      [("ce_specversion", b"1.0"), ("ce_id", b"bad-1"), ("ce_source", b"t"),
                       ("ce_type", b"commerce.order.paid")])
    unknown = order_paid(customer).model_copy(update={"type": "commerce.order.teleported", "id": "bad-2"})
    invalid = order_paid(customer).model_copy(update={"id": "bad-3"})
    invalid_data = dict(invalid.data, total_amount=12.5)
    await publish_raw(broker, TOPIC_ORDERS, customer.encode(), orjson.dumps(
        {**unknown.to_structured()}), [("content-type", b"application/cloudevents+json")])
    await publish_raw(broker, TOPIC_ORDERS, customer.encode(), orjson.dumps(invalid_data),
                      [("ce_specversion", b"1.0"), ("ce_id", b"bad-3"), ("ce_source", b"t"),
                       ("ce_type", b"commerce.order.paid"), ("content-type", b"application/json")])
    good = order_paid(customer, amount="10.00")
    await broker.publish(TOPIC_ORDERS, [good])

    await wait_until(lambda: _order_count_is(service, customer, 1), what="the good event after the bad ones")
    dead = await broker.read_all(f"{TOPIC_ORDERS}.{group}.dlq", expect=3)
    assert len(dead) == 3
    headers = [dict((k, v.decode()) for k, v in record.headers) for record in dead]
    assert [h["dlq.reason"] for h in headers] == ["invalid_envelope", "unknown_type", "invalid_data"]
    assert all(h["dlq.original.topic"] == TOPIC_ORDERS for h in headers)
    assert all(h["dlq.original.offset"].isdigit() and h["dlq.original.partition"].isdigit() for h in headers)
    assert "not JSON" in headers[0]["dlq.error"]
    assert "teleported" in headers[1]["dlq.error"]
    assert "total_amount" in headers[2]["dlq.error"]
    assert dead[0].value == b"{not json"  # the original bytes, for replay after a fix
    assert await service.metric("crm_events_dead_lettered_total") == 3


async def test_a_change_that_fails_mid_transaction_leaves_no_change_and_no_outbox_row(
        broker, make_database, start_service):
    database = make_database("profile")
    poisoned, healthy = new_customer_id(), new_customer_id()
    # The outbox insert for one customer fails after that customer's row was already written in the
    # same transaction: a failure in the middle of a real change, raised by PostgreSQL itself.
    await database.execute(f"""
        CREATE FUNCTION fail_for_poisoned() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.key = convert_to('{poisoned}', 'UTF8') THEN
                RAISE EXCEPTION 'disk on fire for %', '{poisoned}';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER fail_for_poisoned BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION fail_for_poisoned();
    """)
    service = start_service("profile", database)
    await broker.publish(TOPIC_ORDERS, [order_paid(poisoned), order_paid(healthy)])

    await wait_until(lambda: _order_count_is(service, healthy, 1), what="the healthy customer's order")
    await wait_until(lambda: service.metric("crm_events_dead_lettered_total", reason="handler_failed"),
                     what="the failing event dead-lettered")
    assert await _profile(service, poisoned) is None
    assert await database.fetchval("SELECT count(*) FROM orders WHERE customer_id = $1", poisoned) == 0
    assert await database.fetchval("SELECT count(*) FROM outbox WHERE key = convert_to($1, 'UTF8')", poisoned) == 0
    assert await database.fetchval("SELECT count(*) FROM inbox") == 1  # only the healthy event


async def test_a_transient_database_failure_is_retried_until_applied_once(broker, make_database, start_service):
    database = make_database("profile")
    # The first three attempts fail with a serialization failure (SQLSTATE 40001). The attempts are
    # counted with a sequence because nextval is not rolled back with the failing transaction.
    await database.execute("""
        CREATE SEQUENCE attempts;
        CREATE FUNCTION flaky() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('attempts') <= 3 THEN
                RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER flaky BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION flaky();
    """)
    service = start_service("profile", database)
    customer = new_customer_id()
    await broker.publish(TOPIC_ORDERS, [order_paid(customer, amount="42.00")])

    profile = await wait_until(lambda: _order_count_is(service, customer, 1), what="applied after retries")
    assert profile["total_spent"] == {"CNY": "42.00"}
    assert await service.metric("crm_consumer_retries_total") >= 3
    assert await service.metric("crm_events_dead_lettered_total") == 0
    assert await database.fetchval("SELECT count(*) FROM orders") == 1


async def test_profile_changes_are_published_through_the_outbox(broker, make_database, start_service):
    database = make_database("profile")
    start_service("profile", database)
    customer = new_customer_id()
    paid = order_paid(customer, amount="12.30")
    await broker.publish(TOPIC_ORDERS, [paid])

    records = await broker.read_all(TOPIC_PROFILE, expect=1)
    events = [from_kafka(r.value, r.headers) for r in records if r.key == customer.encode()]
    assert len(events) == 1
    event = events[0]
    assert event.type == "crm.profile.customer.updated"
    assert event.subject == customer and event.source == "crm/profile"
    assert event.time is not None and event.dataschema.endswith("crm.profile.customer.updated/v1.json")
    assert event.data["order_count"] == 1 and event.data["total_spent"] == {"CNY": "12.30"}
    assert event.data["changed"] == ["orders"]
    # The trace continues: same trace id as the order event, a new span.
    assert event.traceparent.split("-")[1] == paid.traceparent.split("-")[1]
    assert event.traceparent != paid.traceparent
    await wait_until(lambda: database.fetchval("SELECT count(*) = 0 FROM outbox"), what="outbox drained")
