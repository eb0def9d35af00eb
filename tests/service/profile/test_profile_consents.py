"""Issue 20: every consent change leaves the profile as crm.profile.consent.changed (through the outbox),
an unsubscribe from a campaign message (crm.campaigns.unsubscribed) withdraws the consent, and a
customer's locale and time zone are kept and shown. On the real profile service, PostgreSQL and broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CAMPAIGNS, TOPIC_CUSTOMERS, TOPIC_PROFILE
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import customer_registered, new_customer_id
from tests.harness.infra import wait_until

AGENT = Identity(subject="agent-7", role=Role.AGENT)
CONSENT_CHANGED = "crm.profile.consent.changed"


async def _registered(service, broker, event: CloudEvent) -> dict:
    await broker.publish(TOPIC_CUSTOMERS, [event])
    customer = event.data["customer_id"]

    async def known():
        async with service.client(AGENT) as http:
            response = await http.get(f"/v1/profiles/{customer}")
        return response.json() if response.status_code == 200 else None
    return await wait_until(known, what=f"{customer} registered")


async def _consents_announced(broker, database, customer: str) -> list[tuple[str, bool, str]]:
    return [(e.data["channel"], e.data["granted"], e.data["source"])
            for e in await broker.events_published_by(database, TOPIC_PROFILE)
            if e.type == CONSENT_CHANGED and e.data["customer_id"] == customer]


def unsubscribed(customer: str, channel: str = "email") -> CloudEvent:
    return CloudEvent.new(type="crm.campaigns.unsubscribed", source="crm/campaigns", subject=customer,
                          data={"customer_id": customer, "channel": channel, "campaign_id": "cmp-1",
                                "message_id": f"m-{uuid.uuid4().hex[:8]}",
                                "at": datetime(2026, 11, 20, 9, 0, tzinfo=UTC).isoformat()})


async def test_a_registration_announces_each_consent_and_an_agent_edit_only_what_changed(
        broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    customer = new_customer_id()
    registration = customer_registered(customer)  # consents: e-mail yes, SMS no
    registration.data.update(locale="zh-CN", time_zone="Asia/Shanghai")
    profile = await _registered(service, broker, registration)
    assert (profile["locale"], profile["time_zone"]) == ("zh-CN", "Asia/Shanghai")
    assert await _consents_announced(broker, database, customer) == [("email", True, "registration"),
                                                                      ("sms", False, "registration")]
    async with service.client(AGENT) as http:
        response = await http.patch(f"/v1/profiles/{customer}", json={"consents": {"email": True, "sms": True},
                                                                      "time_zone": "Europe/Rome"})
        assert response.status_code == 200, response.text
        assert response.json()["time_zone"] == "Europe/Rome" and response.json()["locale"] == "zh-CN"
        refused = await http.patch(f"/v1/profiles/{customer}", json={"time_zone": "Mars/Olympus"})
        assert refused.status_code == 422
    assert (await _consents_announced(broker, database, customer))[2:] == [("sms", True, "agent")]
    events = [e for e in await broker.events_published_by(database, TOPIC_PROFILE)
              if e.type == CONSENT_CHANGED and e.data["customer_id"] == customer]
    assert all(e.subject == customer and set(e.data) == {"customer_id", "channel", "granted", "source",
                                                         "changed_at"} for e in events)  # no PII
    assert "Asia/Shanghai" not in "\n".join(await database.fetch_texts("SELECT t::text FROM outbox t"))


async def test_an_unsubscribe_withdraws_the_consent_once_and_announces_it(broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    customer, stranger = new_customer_id(), new_customer_id()
    await _registered(service, broker, customer_registered(customer))
    first = unsubscribed(customer)
    # The same event twice (the inbox drops the copy), a second unsubscribe of an already withdrawn
    # consent (no change), and one about a customer the profile does not know (ignored, no crash).
    sent = [first, first, unsubscribed(customer), unsubscribed(stranger)]
    await broker.publish(TOPIC_CAMPAIGNS, sent)

    async def all_applied():
        seen = await database.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1::text[])",
                                       [e.id for e in sent])
        return seen == 3 or None
    await wait_until(all_applied, what="the unsubscribes applied")
    async with service.client(AGENT) as http:
        consent = (await http.get(f"/v1/profiles/{customer}")).json()["consents"]["email"]
    assert (consent["granted"], consent["source"]) == (False, "unsubscribe")
    rows = await database.fetch("SELECT channel, granted, source FROM consent_changes WHERE customer_id = $1 "
                                "ORDER BY id", customer)
    assert [tuple(r.values()) for r in rows] == [("email", True, "shop/accounts"), ("sms", False, "shop/accounts"),
                                                 ("email", False, "unsubscribe")]
    assert (await _consents_announced(broker, database, customer))[2:] == [("email", False, "unsubscribe")]
    assert await database.fetchval("SELECT count(*) FROM customers WHERE customer_id = $1", stranger) == 0
