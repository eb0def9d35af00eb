"""PII at rest, search through blind indexes, masking, audited reveals and agents' edits,
on the real profile service, PostgreSQL and broker."""

from __future__ import annotations

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CUSTOMERS

from tests.harness.events import customer_registered, new_customer_id
from tests.harness.infra import wait_until

AGENT = Identity(subject="agent-7", role=Role.AGENT)
AGENT_WITH_PII = Identity(subject="agent-8", role=Role.AGENT, scopes=frozenset({"pii:read"}))
SUPERVISOR = Identity(subject="sup-1", role=Role.SUPERVISOR)


async def _registered(service, broker, customer: str, **fields) -> dict:
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer, **fields)])

    async def known():
        async with service.client() as http:
            response = await http.get(f"/v1/profiles/{customer}")
        return response.json() if response.status_code == 200 else None
    return await wait_until(known, what=f"{customer} registered")


async def test_the_database_holds_no_plaintext_email_phone_or_name(broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    customer = new_customer_id()
    await _registered(service, broker, customer, email="Mei.Chen@Example.com", name="Mei Chenxiang")
    secrets = ["mei.chen@example.com", "Mei.Chen", "Mei Chenxiang", "Chenxiang", "13800138000", "0013 8000"]
    for table in ("customers", "customer_name_index", "consent_changes", "outbox", "inbox"):
        dump = "\n".join(await database.fetch_texts(f"SELECT t::text FROM {table} t"))
        for secret in secrets:
            assert secret.lower() not in dump.lower(), (table, secret)
            assert secret.encode().hex() not in dump, (table, secret)  # nor as bytea hex
    row = await database.fetch("SELECT email_enc, phone_enc, name_enc FROM customers WHERE customer_id = $1", customer)
    assert all(value is not None for value in dict(row[0]).values())


async def test_search_finds_a_customer_by_phone_written_any_way_email_and_name(broker, make_database, start_service):
    service = start_service("profile", make_database("profile"))
    customer, other = new_customer_id(), new_customer_id()
    await _registered(service, broker, customer, email="li.wei@example.com", name="Li Wei")
    await _registered(service, broker, other, email="wei.li@example.com", name="Wei Li")
    async with service.client() as http:
        for phone in ("+86 138 0013 8000", "13800138000", "(+86) 138-0013-8000", "0086 13800138000"):
            found = (await http.get("/v1/profiles", params={"phone": phone})).json()
            assert customer in [m["customer_id"] for m in found["items"]], phone
        by_email = (await http.get("/v1/profiles", params={"email": " LI.WEI@example.COM "})).json()
        assert [m["customer_id"] for m in by_email["items"]] == [customer]
        assert by_email["items"][0]["email"] == "l*****@example.com"  # results are masked
        by_name = (await http.get("/v1/profiles", params={"name": "li w"})).json()
        assert [m["customer_id"] for m in by_name["items"]] == [customer]
        both = sorted([customer, other])
        first = (await http.get("/v1/profiles", params={"name": "wei", "limit": 1})).json()
        second = (await http.get("/v1/profiles", params={"name": "wei", "limit": 1,
                                                         "cursor": first["next_cursor"]})).json()
        assert [first["items"][0]["customer_id"], second["items"][0]["customer_id"]] == both
        assert second["next_cursor"] is None
        by_id = (await http.get("/v1/profiles", params={"customer_id": customer})).json()
        assert [m["customer_id"] for m in by_id["items"]] == [customer]
        assert (await http.get("/v1/profiles", params={"phone": "n/a"})).json()["items"] == []
        assert (await http.get("/v1/profiles", params={"phone": "1", "email": "a@b.cn"})).status_code == 422
        assert (await http.get("/v1/profiles")).status_code == 422
    async with service.client(Identity(subject=customer, role=Role.CUSTOMER, customer_id=customer)) as http:
        assert (await http.get("/v1/profiles", params={"name": "wei"})).status_code == 403


async def test_pii_is_masked_unless_revealed_with_permission_and_a_reason_which_is_audited(
        broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    customer = new_customer_id()
    await _registered(service, broker, customer, email="mei.chen@example.com", name="Mei Chen")
    url = f"/v1/profiles/{customer}"
    async with service.client(AGENT) as http:
        masked = (await http.get(url)).json()
        refused = await http.get(url, params={"reveal": "true"}, headers={"X-Access-Reason": "caller verified"})
    assert masked["pii"] == "masked" and masked["email"] == "m*******@example.com"
    assert masked["name"] == "M** C***" and masked["phone"] == "+86*******8000"
    assert refused.status_code == 403
    async with service.client(AGENT_WITH_PII) as http:
        no_reason = await http.get(url, params={"reveal": "true"})
        clear = await http.get(url, params={"reveal": "true"}, headers={"X-Access-Reason": "ticket T-17: delivery"})
    assert no_reason.status_code == 422
    assert clear.status_code == 200 and clear.json()["pii"] == "clear"
    assert clear.json()["email"] == "mei.chen@example.com" and clear.json()["phone"] == "+8613800138000"
    # Only the permitted read was audited.
    audit = await database.fetch("SELECT actor, role, customer_id, fields, reason FROM pii_access_log")
    assert [dict(r) for r in audit] == [{"actor": "agent-8", "role": "agent", "customer_id": customer,
                                         "fields": ["email", "phone", "name"], "reason": "ticket T-17: delivery"}]
    async with service.client(SUPERVISOR) as http:
        log = (await http.get("/v1/audit/pii-access", params={"customer_id": customer})).json()
        huge = await http.get("/v1/audit/pii-access", params={"cursor": "99999999999999999999999"})
    assert huge.status_code == 422  # a cursor beyond bigint is bad input, not a 500
    assert [(e["actor"], e["reason"]) for e in log["items"]] == [("agent-8", "ticket T-17: delivery")]
    async with service.client(AGENT_WITH_PII) as http:
        assert (await http.get("/v1/audit/pii-access")).status_code == 403


async def test_an_agent_edit_is_validated_and_records_consent_changes(broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    customer = new_customer_id()
    await _registered(service, broker, customer)
    url = f"/v1/profiles/{customer}"
    async with service.client(AGENT) as http:
        before = (await http.get(url)).json()
        invalid = [
            {"email": "not-an-address"}, {"phone": "12"}, {"consents": {"email": True, "whatsapp": True}},
            {"name": "x" * 201}, {"gender": "robot"}, {"tags": ["ok", "no/slashes"]}, {"nickname": "x"},
            {"email": "ok@example.com", "phone": "n/a"},
        ]
        for body in invalid:
            response = await http.patch(url, json=body)
            assert response.status_code == 422, body
            assert response.headers["content-type"] == "application/problem+json"
        assert (await http.get(url)).json() == before  # nothing changed
        updated = await http.patch(url, json={"phone": "139 0013 9000", "consents": {"sms": True},
                                              "tags": ["vip", "prefers-phone"], "address": "1 Nanjing Rd",
                                              "external_ids": {"erp": "E-1001-77", "wechat": "oX5f-abc123"}})
        unknown = await http.patch("/v1/profiles/nobody", json={"city": "Xi'an"})
        bad_kind = await http.patch(url, json={"external_ids": {"ERP!": "x"}})
        by_external = (await http.get("/v1/profiles", params={"external_id": "erp:E-1001-77"})).json()
        wrong_kind = (await http.get("/v1/profiles", params={"external_id": "wechat:E-1001-77"})).json()
    assert updated.status_code == 200, updated.text
    assert updated.json()["phone"] == "+86*******9000" and updated.json()["tags"] == ["vip", "prefers-phone"]
    assert updated.json()["consents"]["sms"]["granted"] is True
    assert updated.json()["consents"]["sms"]["source"] == "agent:agent-7"
    assert updated.json()["email"] == before["email"]  # fields left out keep their value
    assert unknown.status_code == 404 and bad_kind.status_code == 422
    assert updated.json()["external_ids"] == {"erp": "*****1-77", "wechat": "*******c123"}
    assert [m["customer_id"] for m in by_external["items"]] == [customer] and wrong_kind["items"] == []
    dump = "\n".join(await database.fetch_texts("SELECT t::text FROM customer_external_ids t"))
    assert "E-1001-77" not in dump and "abc123" not in dump
    changes = await database.fetch("SELECT channel, granted, source FROM consent_changes ORDER BY id")
    assert [tuple(c.values()) for c in changes] == [("email", True, "shop/accounts"), ("sms", False, "shop/accounts"),
                                                    ("sms", True, "agent:agent-7")]
