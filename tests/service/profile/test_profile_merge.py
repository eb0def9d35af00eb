"""Merging duplicate profiles on a shared identifier, never on junk, with a journal."""

from __future__ import annotations

import uuid

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS, TOPIC_PROFILE

from tests.harness.events import customer_registered, new_customer_id, order_event
from tests.harness.infra import wait_until

SUPERVISOR = Identity(subject="sup-1", role=Role.SUPERVISOR)


def _registered(customer: str, email: str, phone: str | None):
    event = customer_registered(customer, email=email)
    return event.model_copy(update={"data": {**event.data, "phone": phone}})


async def _order_count(service, customer: str) -> int | None:
    async with service.client() as http:
        response = await http.get(f"/v1/profiles/{customer}")
    return response.json()["order_count"] if response.status_code == 200 else None


async def test_duplicates_sharing_an_email_are_merged_with_a_journal(broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    keep, dup, junk_a, junk_b = (new_customer_id() for _ in range(4))
    await broker.publish(TOPIC_CUSTOMERS, [
        _registered(keep, "Mei.Chen@example.com", "+86 139 0013 9001"),
        _registered(dup, "mei.chen@EXAMPLE.com", "+86 139 0013 9002"),
        _registered(junk_a, "null", "0000000"), _registered(junk_b, "NULL", "000-0000")])
    await broker.publish(TOPIC_ORDERS, [order_event("paid", keep, f"o-{keep}", amount="10.00"),
                                        order_event("paid", dup, f"o-{dup}", amount="25.00")])

    async def both_paid():
        return await _order_count(service, keep) == 1 and await _order_count(service, dup) == 1
    await wait_until(both_paid, what="both orders applied")
    async def junk_registered():
        return await _order_count(service, junk_b) is not None
    await wait_until(junk_registered, what="junk customers registered")

    async with service.client(SUPERVISOR) as http:
        duplicates = (await http.get(f"/v1/profiles/{keep}/duplicates")).json()
        junk_duplicates = (await http.get(f"/v1/profiles/{junk_a}/duplicates")).json()
        on_junk = await http.post(f"/v1/profiles/{junk_a}/merge", json={
            "duplicate_id": junk_b, "identifier": "email", "reason": "same person?"},
            headers={"Idempotency-Key": str(uuid.uuid4())})
        on_phone = await http.post(f"/v1/profiles/{keep}/merge", json={
            "duplicate_id": dup, "identifier": "phone", "reason": "different phones"},
            headers={"Idempotency-Key": str(uuid.uuid4())})
        merged = await http.post(f"/v1/profiles/{keep}/merge", json={
            "duplicate_id": dup, "identifier": "email", "reason": "verified on the phone, ticket T-9"},
            headers={"Idempotency-Key": str(uuid.uuid4())})
        again = await http.post(f"/v1/profiles/{keep}/merge", json={
            "duplicate_id": dup, "identifier": "email", "reason": "twice"},
            headers={"Idempotency-Key": str(uuid.uuid4())})
        survivor = (await http.get(f"/v1/profiles/{keep}")).json()
        tombstone = (await http.get(f"/v1/profiles/{dup}")).json()
        timeline = (await http.get(f"/v1/profiles/{keep}/timeline", params={"kind": "order"})).json()
    assert duplicates == [{"customer_id": dup, "shared": ["email"]}]
    assert junk_duplicates == []  # "null" and "0000000" are not identifiers
    assert on_junk.status_code == 422 and on_phone.status_code == 422
    assert merged.status_code == 200, merged.text
    assert again.status_code == 409
    assert survivor["order_count"] == 2 and survivor["total_spent"] == {"CNY": "35.00"}
    assert tombstone["merged_into"] == keep and tombstone["order_count"] == 0 and tombstone["email"] is None
    assert {e["details"]["order_id"] for e in timeline["items"]} == {f"o-{keep}", f"o-{dup}"}
    journal = await database.fetch("SELECT survivor_id, merged_id, identifier, actor, reason FROM profile_merges")
    assert [tuple(r.values()) for r in journal] == [(keep, dup, "email", "sup-1", "verified on the phone, ticket T-9")]
    merges = [e for e in await broker.events_published_by(database, TOPIC_PROFILE)
              if e.type == "crm.profile.customer.merged"]
    assert [(e.data["customer_id"], e.data["merged_customer_id"]) for e in merges] == [(keep, dup)]

    # The shop still sends the old id: it lands on the surviving profile.
    await broker.publish(TOPIC_ORDERS, [order_event("paid", dup, "o-after-merge", amount="5.00")])

    async def three():
        return await _order_count(service, keep) == 3
    await wait_until(three, what="a later order of the merged id counted on the survivor")
    assert await _order_count(service, dup) == 0


async def test_an_unmerge_moves_back_what_the_merge_moved_and_later_orders_stay(broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    keep, dup = new_customer_id(), new_customer_id()
    # The duplicate has a phone the survivor lacks: the merge takes it, the unmerge gives it back.
    await broker.publish(TOPIC_CUSTOMERS, [_registered(keep, "li.wei@example.com", None),
                                           _registered(dup, "Li.Wei@example.com", "+86 139 0013 9003")])
    await broker.publish(TOPIC_ORDERS, [order_event("paid", keep, f"o-{keep}", amount="10.00"),
                                        order_event("paid", dup, f"o-{dup}", amount="25.00")])

    async def both_paid():
        return await _order_count(service, keep) == 1 and await _order_count(service, dup) == 1
    await wait_until(both_paid, what="both orders applied")
    async with service.client(SUPERVISOR) as http:
        not_merged = await http.post(f"/v1/profiles/{keep}/unmerge", json={"duplicate_id": dup, "reason": "early"},
                                     headers={"Idempotency-Key": str(uuid.uuid4())})
        merged = await http.post(f"/v1/profiles/{keep}/merge", json={
            "duplicate_id": dup, "identifier": "email", "reason": "same e-mail"},
            headers={"Idempotency-Key": str(uuid.uuid4())})
        assert (await http.get(f"/v1/profiles/{keep}")).json()["phone"] is not None
    assert not_merged.status_code == 404 and merged.status_code == 200, merged.text
    # After the merge, an order sent under the duplicate's id lands on (and stays with) the survivor.
    await broker.publish(TOPIC_ORDERS, [order_event("paid", dup, "o-after-merge", amount="5.00")])

    async def three():
        return await _order_count(service, keep) == 3
    await wait_until(three, what="the later order counted on the survivor")
    async with service.client(SUPERVISOR) as http:
        undone = await http.post(f"/v1/profiles/{keep}/unmerge", json={
            "duplicate_id": dup, "reason": "two people sharing a family e-mail"},
            headers={"Idempotency-Key": str(uuid.uuid4())})
        again = await http.post(f"/v1/profiles/{keep}/unmerge", json={"duplicate_id": dup, "reason": "twice"},
                                headers={"Idempotency-Key": str(uuid.uuid4())})
        survivor = (await http.get(f"/v1/profiles/{keep}")).json()
        restored = (await http.get(f"/v1/profiles/{dup}")).json()
        orders_of_dup = (await http.get(f"/v1/profiles/{dup}/orders")).json()
    assert undone.status_code == 200, undone.text
    assert (undone.json()["order_count"], undone.json()["unmerged_order_count"]) == (2, 1)
    assert again.status_code == 404
    assert (survivor["order_count"], survivor["total_spent"], survivor["phone"]) == (2, {"CNY": "15.00"}, None)
    assert (restored["merged_into"], restored["order_count"], restored["total_spent"]) == (None, 1, {"CNY": "25.00"})
    assert restored["phone"] is not None and restored["email"] is not None
    assert [o["order_id"] for o in orders_of_dup["items"]] == [f"o-{dup}"]
    journal = await database.fetch("SELECT merged_id, unmerged_by, unmerge_reason FROM profile_merges "
                                   "WHERE unmerged_at IS NOT NULL")
    assert [tuple(r.values()) for r in journal] == [(dup, "sup-1", "two people sharing a family e-mail")]
    unmerges = [e for e in await broker.events_published_by(database, TOPIC_PROFILE)
                if e.type == "crm.profile.customer.unmerged"]
    assert [(e.data["customer_id"], e.data["unmerged_customer_id"]) for e in unmerges] == [(keep, dup)]
    # The duplicate's own id is its own again.
    await broker.publish(TOPIC_ORDERS, [order_event("paid", dup, "o-after-unmerge", amount="1.00")])

    async def two():
        return await _order_count(service, dup) == 2
    await wait_until(two, what="an order of the restored id counted on it")
    assert await _order_count(service, keep) == 2


async def test_a_survivor_merged_again_passes_its_duplicates_on(broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    first, second, third = (new_customer_id() for _ in range(3))
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(c, email="zhao.lei@example.com")
                                           for c in (first, second, third)])

    async def registered():
        return await _order_count(service, first) == 0 and await _order_count(service, third) == 0
    await wait_until(registered, what="three profiles")
    async with service.client(SUPERVISOR) as http:
        for survivor, duplicate in ((second, first), (third, second)):
            answer = await http.post(f"/v1/profiles/{survivor}/merge", json={
                "duplicate_id": duplicate, "identifier": "email", "reason": "one shopper, three accounts"},
                headers={"Idempotency-Key": str(uuid.uuid4())})
            assert answer.status_code == 200, answer.text
        # The first merge cannot be undone while its survivor is merged into a third profile.
        blocked = await http.post(f"/v1/profiles/{second}/unmerge", json={"duplicate_id": first, "reason": "order"},
                                  headers={"Idempotency-Key": str(uuid.uuid4())})
    assert blocked.status_code == 409
    await broker.publish(TOPIC_ORDERS, [order_event("paid", first, "o-first-id", amount="8.00")])

    async def on_third():
        return await _order_count(service, third) == 1
    await wait_until(on_third, what="an order of the first id counted on the last survivor")
    assert (await _order_count(service, first), await _order_count(service, second)) == (0, 0)
