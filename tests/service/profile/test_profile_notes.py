"""Agents' notes on a customer, and Idempotency-Key on the real profile service."""

from __future__ import annotations

import uuid

import asyncpg
from crm_shared.events.catalogue import TOPIC_CUSTOMERS

from tests.harness.events import customer_registered, new_customer_id
from tests.harness.infra import TEST_AGENT, wait_until


async def _known(http, customer: str) -> bool:
    return (await http.get(f"/v1/profiles/{customer}")).status_code == 200


async def test_a_retried_note_is_stored_once_and_a_reused_key_is_refused(broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    key = {"Idempotency-Key": str(uuid.uuid4())}
    async with service.client() as http:
        await wait_until(lambda: _known(http, customer), what="customer known")
        first = await http.post(f"/v1/profiles/{customer}/notes", json={"body": "prefers e-mail"}, headers=key)
        retry = await http.post(f"/v1/profiles/{customer}/notes", json={"body": "prefers e-mail"}, headers=key)
        other_body = await http.post(f"/v1/profiles/{customer}/notes", json={"body": "prefers SMS"}, headers=key)
        no_key = await http.post(f"/v1/profiles/{customer}/notes", json={"body": "prefers SMS"})
        unknown = await http.post("/v1/profiles/nobody/notes", json={"body": "x"},
                                  headers={"Idempotency-Key": str(uuid.uuid4())})
        notes = (await http.get(f"/v1/profiles/{customer}/notes")).json()
    assert first.status_code == 201 and first.json()["author"] == TEST_AGENT.subject
    assert retry.status_code == 201 and retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert other_body.status_code == 422 and "different request" in other_body.json()["detail"]
    assert no_key.status_code == 422
    assert unknown.status_code == 404
    assert [n["note_id"] for n in notes] == [first.json()["note_id"]]
    assert await database.fetchval("SELECT count(*) FROM customer_notes") == 1


async def test_a_key_still_in_flight_answers_409(broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    key = str(uuid.uuid4())
    # Another request holding the key: the same advisory lock the service takes.
    holder = await asyncpg.connect(database.dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock(hashtextextended($1 || chr(31) || $2, 0))",
                             TEST_AGENT.subject, key)
        async with service.client() as http:
            await wait_until(lambda: _known(http, customer), what="customer known")
            busy = await http.post(f"/v1/profiles/{customer}/notes", json={"body": "x"},
                                   headers={"Idempotency-Key": key})
    finally:
        await holder.close()
    assert busy.status_code == 409 and busy.headers["content-type"] == "application/problem+json"
    assert await database.fetchval("SELECT count(*) FROM customer_notes") == 0
