"""Export of everything about a customer, and erasure, on the real profile service and broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CHURN, TOPIC_CUSTOMERS, TOPIC_INTERACTIONS, TOPIC_ORDERS, TOPIC_PROFILE
from crm_shared.events.envelope import CloudEvent

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


def churn_changed(customer_id: str, level: str) -> CloudEvent:
    return CloudEvent.new(type="crm.churn.risk.changed", source="crm/churn", subject=customer_id, data={
        "customer_id": customer_id, "old_level": "low", "new_level": level, "score": 0.81,
        "reasons": [{"factor": "overdue", "contribution": 0.4}], "model_version": "m-1",
        "scored_at": NOW.isoformat()})


async def _judged_by_the_shop(service, broker, customer: str) -> None:
    """What staff hold about the customer beyond their own data: tags, a custom segment, an RFM
    segment, a churn level, and an agent's audited look at the PII."""
    async with service.client() as agent:
        assert (await agent.patch(f"/v1/profiles/{customer}", json={"tags": ["vip", "difficult"]})).status_code == 200
    async with service.client(SUPERVISOR) as http:
        segment = await http.post("/v1/segments", headers={"Idempotency-Key": str(uuid.uuid4())}, json={
            "segment_id": f"vip-{customer}", "name": "VIP", "rule": {"has_tag": "vip"}})
        assert segment.status_code == 201, segment.text
        assert (await http.post("/v1/segments/refresh")).status_code == 200  # RFM scores
    await broker.publish(TOPIC_CHURN, [churn_changed(customer, "high")])
    async with service.client(Identity(subject="agent-3", role=Role.AGENT, scopes=frozenset({"pii:read"}))) as agent:
        revealed = await agent.get(f"/v1/profiles/{customer}", params={"reveal": "true"},
                                   headers={"X-Access-Reason": "caller verified"})
        assert revealed.status_code == 200

    async def churn_copied() -> bool:
        async with service.client() as http:
            return (await http.get(f"/v1/profiles/{customer}")).json()["churn_level"] == "high"
    await wait_until(churn_copied, what="the churn level copied")


async def test_a_customer_sees_their_profile_without_the_shops_judgement_and_staff_see_it(
        broker, make_database, start_service):
    service = start_service("profile", make_database("profile"))
    customer = new_customer_id()
    await _with_history(service, broker, customer)
    await _judged_by_the_shop(service, broker, customer)
    async with service.client(Identity(subject=customer, role=Role.CUSTOMER, customer_id=customer)) as http:
        own = (await http.get(f"/v1/profiles/{customer}")).json()
    async with service.client() as http:
        staff = (await http.get(f"/v1/profiles/{customer}")).json()
    shop_view = ("churn_level", "tags", "segments", "rfm")
    assert {k: own[k] for k in shop_view} == {"churn_level": None, "tags": [], "segments": [], "rfm": None}
    assert (own["pii"], own["email"], own["total_spent"]) == ("clear", "mei.chen@example.com", {"CNY": "88.00"})
    assert (staff["churn_level"], staff["tags"], staff["segments"]) == ("high", ["vip", "difficult"],
                                                                       [f"vip-{customer}"])
    assert staff["rfm"]["segment"] is not None and staff["pii"] == "masked"


async def test_export_returns_everything_about_the_customer(broker, make_database, start_service):
    """The customer's own export: their data, not staff's notes, the PII access log or the churn
    warnings; a supervisor's export has all of it."""
    service = start_service("profile", make_database("profile"))
    customer = new_customer_id()
    await _with_history(service, broker, customer)
    await _judged_by_the_shop(service, broker, customer)
    async with service.client(Identity(subject=customer, role=Role.CUSTOMER, customer_id=customer)) as http:
        export = (await http.get(f"/v1/profiles/{customer}/export")).json()
    assert export["profile"]["pii"] == "clear" and export["profile"]["email"] == "mei.chen@example.com"
    assert export["profile"]["name"] == "Mei Chen" and export["profile"]["total_spent"] == {"CNY": "88.00"}
    assert {k: export["profile"][k] for k in ("churn_level", "tags", "segments", "rfm")} == \
        {"churn_level": None, "tags": [], "segments": [], "rfm": None}
    assert [o["order_id"] for o in export["orders"]] == [f"o-{customer}"]
    assert export["orders"][0]["items"][0]["sku"] == "SKU-1"
    assert [e["kind"] for e in export["timeline"]] == ["interaction.search", "order.paid"]
    assert [(c["channel"], c["granted"]) for c in export["consent_changes"]] == [("email", True), ("sms", False)]
    assert export["notes"] is None and export["pii_access_log"] is None
    assert [c["category"] for c in export["categories"]] == ["tea"]
    assert [r["kind"] for r in export["privacy_requests"]] == ["export"]
    async with service.client(SUPERVISOR) as http:
        no_reason = await http.get(f"/v1/profiles/{customer}/export")
        by_supervisor = await http.get(f"/v1/profiles/{customer}/export",
                                       headers={"X-Access-Reason": "subject access request SAR-9"})
    assert no_reason.status_code == 422 and by_supervisor.status_code == 200
    full = by_supervisor.json()
    assert [(a["actor"], a["reason"]) for a in full["pii_access_log"]] == \
        [("agent-3", "caller verified"), ("sup-1", "subject access request SAR-9")]
    assert [n["body"] for n in full["notes"]] == ["Mei prefers calls after 6pm"]
    assert [e["kind"] for e in full["timeline"]] == ["interaction.search", "order.paid", "churn.risk_changed"]
    assert (full["profile"]["churn_level"], full["profile"]["tags"], full["profile"]["segments"]) == \
        ("high", ["vip", "difficult"], [f"vip-{customer}"])
    assert [r["kind"] for r in full["privacy_requests"]] == ["export", "export"]
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
