"""Export of everything about a customer, and erasure, on the real profile service and broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_INTERACTIONS, TOPIC_ORDERS, TOPIC_PROFILE

from tests.harness.events import customer_registered, interaction, new_customer_id, order_event
from tests.harness.infra import wait_until

SUPERVISOR = Identity(subject="sup-1", role=Role.SUPERVISOR)
NOW = datetime.now(UTC).replace(microsecond=0)


async def _with_history(service, broker, customer: str) -> None:
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer, email="mei.chen@example.com",
                                                               name="Mei Chen")])
    await broker.publish(TOPIC_INTERACTIONS, [interaction(customer, kind="search", at=NOW - timedelta(days=1))])
    await broker.publish(TOPIC_ORDERS, [order_event("paid", customer, f"o-{customer}", amount="88.00",
                                                    at=NOW - timedelta(hours=1))])

    async def ready():
        async with service.client() as http:
            profile = (await http.get(f"/v1/profiles/{customer}")).json()
        return profile.get("order_count") == 1 and profile["activity"]["last_7_days"] == 1
    await wait_until(ready, what="history applied")
    async with service.client() as http:
        note = await http.post(f"/v1/profiles/{customer}/notes", json={"body": "Mei prefers calls after 6pm"},
                               headers={"Idempotency-Key": str(uuid.uuid4())})
        assert note.status_code == 201


async def test_export_returns_everything_about_the_customer(broker, make_database, start_service):
    service = start_service("profile", make_database("profile"))
    customer = new_customer_id()
    await _with_history(service, broker, customer)
    async with service.client(Identity(subject=customer, role=Role.CUSTOMER, customer_id=customer)) as http:
        export = (await http.get(f"/v1/profiles/{customer}/export")).json()
    assert export["profile"]["pii"] == "clear" and export["profile"]["email"] == "mei.chen@example.com"
    assert export["profile"]["name"] == "Mei Chen" and export["profile"]["total_spent"] == {"CNY": "88.00"}
    assert [o["order_id"] for o in export["orders"]] == [f"o-{customer}"]
    assert export["orders"][0]["items"][0]["sku"] == "SKU-1"
    assert [e["kind"] for e in export["timeline"]] == ["interaction.search", "order.paid"]
    assert [(c["channel"], c["granted"]) for c in export["consent_changes"]] == [("email", True), ("sms", False)]
    assert [n["body"] for n in export["notes"]] == ["Mei prefers calls after 6pm"]
    assert [c["category"] for c in export["categories"]] == ["tea"]
    assert [r["kind"] for r in export["privacy_requests"]] == ["export"]
    async with service.client(SUPERVISOR) as http:
        no_reason = await http.get(f"/v1/profiles/{customer}/export")
        by_supervisor = await http.get(f"/v1/profiles/{customer}/export",
                                       headers={"X-Access-Reason": "subject access request SAR-9"})
    assert no_reason.status_code == 422 and by_supervisor.status_code == 200
    assert [(a["actor"], a["reason"]) for a in by_supervisor.json()["pii_access_log"]] == \
        [("sup-1", "subject access request SAR-9")]
    async with service.client() as http:  # an agent may not export
        assert (await http.get(f"/v1/profiles/{customer}/export",
                               headers={"X-Access-Reason": "x-y-z"})).status_code == 403


async def test_erasure_removes_pii_keeps_statistics_and_tells_the_other_services(
        broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    customer = new_customer_id()
    await _with_history(service, broker, customer)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    async with service.client(SUPERVISOR) as http:
        erased = await http.post(f"/v1/profiles/{customer}/erasure", json={"reason": "customer request R-1"},
                                 headers=key)
        again = await http.post(f"/v1/profiles/{customer}/erasure", json={"reason": "customer request R-1"},
                                headers=key)
        assert erased.status_code == 200 and again.json() == erased.json()
        profile = (await http.get(f"/v1/profiles/{customer}", params={"reveal": "true"},
                                  headers={"X-Access-Reason": "check erasure"})).json()
    assert profile["erased_at"] and all(profile[f] is None for f in ("email", "phone", "name", "birthday", "city"))
    assert profile["order_count"] == 1 and profile["total_spent"] == {"CNY": "88.00"}  # statistics stay
    assert profile["consents"]["email"]["granted"] is False
    row = await database.fetch("SELECT email_enc, email_bidx, phone_enc, phone_bidx, name_enc FROM customers "
                               "WHERE customer_id = $1", customer)
    assert set(dict(row[0]).values()) == {None}
    assert await database.fetchval("SELECT count(*) FROM customer_name_index WHERE customer_id = $1", customer) == 0
    assert await database.fetchval("SELECT count(*) FROM customer_notes WHERE customer_id = $1", customer) == 0
    assert await database.fetchval("SELECT count(*) FROM timeline WHERE customer_id = $1 AND kind LIKE "
                                   "'interaction.%' AND details <> '{}'", customer) == 0

    # The other services learn it from the bus: one event, whatever the retries.
    erasures = [e for e in await broker.events_published_by(database, TOPIC_PROFILE)
                if e.type == "crm.profile.customer.erased"]
    assert len(erasures) == 1 and erasures[0].data["customer_id"] == customer and erasures[0].subject == customer

    # PII the shop sends later is not stored again; search cannot find the customer.
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer, email="mei.chen@example.com")
                                           .model_copy(update={"type": "commerce.customer.updated"})])
    await broker.publish(TOPIC_ORDERS, [order_event("paid", customer, "o-later", amount="12.00")])

    async def second_order():
        async with service.client() as http:
            return (await http.get(f"/v1/profiles/{customer}")).json()["order_count"] == 2
    await wait_until(second_order, what="a later order still counted")
    assert await database.fetchval("SELECT email_enc FROM customers WHERE customer_id = $1", customer) is None
    async with service.client() as http:
        found = (await http.get("/v1/profiles", params={"email": "mei.chen@example.com"})).json()
    assert customer not in [m["customer_id"] for m in found["items"]]
