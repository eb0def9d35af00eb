"""Erasure through every service that holds personal data (profile, loyalty, tickets, churn), each a
real process on its own database and the real broker: nothing of what the customer or anybody
about them wrote is left in any table, the merged duplicate is erased with its survivor, and
events arriving after the erasure store the numbers but no personal data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_INTERACTIONS, TOPIC_ORDERS, TOPIC_PROFILE
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import interaction, new_customer_id, order_event
from tests.harness.infra import Database, ServiceProcess, wait_until

SUPERVISOR = Identity(subject="sup-erasure", role=Role.SUPERVISOR)
NOW = datetime.now(UTC).replace(microsecond=0)
PHONE = "+86 139 0013 9000"  # shared by the survivor and its duplicate: the merge is on it

# Distinctive words in everything the customer, the shop and the agents write; none may survive.
WRITTEN = ["yingtai", "xqcity", "lotusbridge", "butterfly-lovers", "qinghe-parcel", "lotus-lane", "auntie-meilan",
           "xqlane", "xqdesc", "hanshan", "xqnote", "xqfile", "xqcsat"]
DUPLICATE = ["shanbo", "jade-hairpin", "yuhang-sorry", "xqrefund", "merge-proof-xq"]
LATE = ["latexq", "late-search-xq", "late-dup-xq"]
SERVICES = ("profile", "loyalty", "tickets", "churn")


def _customer(customer_id: str, *, type_: str = "registered", email: str, name: str, city: str,
              consents: bool = True) -> CloudEvent:
    at = NOW - timedelta(days=40)
    return CloudEvent(
        id=str(uuid.uuid4()), source="shop/accounts", type=f"commerce.customer.{type_}", subject=customer_id,
        time=at, data={"customer_id": customer_id, "email": email, "phone": PHONE, "name": name,
                       "birthday": "1990-05-06", "gender": "female", "city": city, "registered_at": at.isoformat(),
                       "consents": {"email": consents, "sms": consents}})


async def _applied(service: ServiceProcess, event_type: str) -> float:
    return await service.metric("crm_events_applied_total", type=event_type)


async def _wait_applied(service: ServiceProcess, counts: dict[str, int]) -> None:
    async def done() -> bool:
        return all([await _applied(service, t) >= n for t, n in counts.items()])
    await wait_until(done, timeout_s=30, what=f"{service.name} applied {counts}")


async def _rows_holding(database: Database, words: list[str]) -> list[str]:
    """Every row of every table that holds one of ``words``, in clear or inside a bytea (hex)."""
    async def outbox_empty() -> bool:
        return await database.fetchval("SELECT count(*) FROM outbox") == 0
    await wait_until(outbox_empty, what="the outbox relayed")
    found = []
    for table in await database.fetch_texts("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
        for row in await database.fetch_texts(f'SELECT CAST(t AS text) FROM "{table}" t'):
            lowered = row.lower()
            hits = [w for w in words if w in lowered or w.encode().hex() in lowered]
            if hits:
                found.append(f"{table}: {hits}")
    return sorted(found)


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def _start(make_database, start_service) -> tuple[dict[str, Database], list[ServiceProcess]]:
    databases = {name: make_database(name) for name in SERVICES}
    return databases, start_service.together([(n, db, {}) for n, db in databases.items()])


async def _erase(profile: ServiceProcess, customer: str) -> dict:
    async with profile.client(SUPERVISOR) as supervisor:
        erased = await supervisor.post(f"/v1/profiles/{customer}/erasure", headers=_key(),
                                       json={"reason": "request R-7"})
    assert erased.status_code == 200, erased.text
    return erased.json()


async def _ledger_amounts(loyalty: Database) -> list[tuple]:
    return [tuple(row) for row in await loyalty.fetch(
        "SELECT entry_id, customer_id, kind, points, available_delta, pending_delta, debt_delta, order_id "
        "FROM ledger ORDER BY entry_id")]


async def _books_balance(loyalty: Database) -> bool:
    """Every account's balances equal the sums of its ledger."""
    return await loyalty.fetchval("""
        SELECT bool_and((a.available, a.pending, a.debt) = (l.available, l.pending, l.debt))
        FROM accounts a JOIN (SELECT customer_id, sum(available_delta) AS available, sum(pending_delta) AS pending,
                                     sum(debt_delta) AS debt FROM ledger GROUP BY customer_id) l USING (customer_id)""")


async def test_erasure_leaves_nothing_anybody_wrote_in_any_service_and_keeps_the_numbers(
        broker, make_database, start_service):
    databases, (profile, loyalty, tickets, churn) = _start(make_database, start_service)
    survivor = new_customer_id()
    as_customer = Identity(subject=survivor, role=Role.CUSTOMER, customer_id=survivor)
    await broker.publish(TOPIC_CUSTOMERS, [
        _customer(survivor, email="zhu.yingtai@example.com", name="Zhu Yingtai", city="Xqcity")])
    await broker.publish(TOPIC_INTERACTIONS, [
        interaction(survivor, kind="search", at=NOW - timedelta(days=2), attributes={"query": "butterfly-lovers"})])
    await broker.publish(TOPIC_ORDERS, [
        order_event("paid", survivor, f"o-{survivor}", amount="300.00", at=NOW - timedelta(days=20))])
    await _wait_applied(loyalty, {"commerce.customer.registered": 1, "commerce.order.paid": 1})
    await _wait_applied(churn, {"commerce.order.paid": 1, "commerce.interaction.recorded": 1})
    await _wait_applied(profile, {"commerce.customer.registered": 1, "commerce.order.paid": 1,
                                  "commerce.interaction.recorded": 1})

    async with profile.client() as agent:
        assert (await agent.patch(f"/v1/profiles/{survivor}", json={"address": "5 Lotusbridge Road"})).status_code \
            == 200
        assert (await agent.post(f"/v1/profiles/{survivor}/notes", json={"body": "Ask about the qinghe-parcel"},
                                 headers=_key())).status_code == 201
    async with loyalty.client() as agent:
        adjusted = await agent.post(f"/v1/loyalty/accounts/{survivor}/adjustments", headers=_key(),
                                    json={"points": 120, "reason": "goodwill for the lotus-lane teapot"})
        assert adjusted.status_code == 201, adjusted.text
    async with loyalty.client(as_customer) as own:
        redeemed = await own.post(f"/v1/loyalty/accounts/{survivor}/redemptions", headers=_key(), json={
            "points": 20, "kind": "gift", "gift_sku": "GIFT-TEA", "reason": "a present for auntie-meilan"})
        assert redeemed.status_code == 201, redeemed.text
    async with tickets.client(as_customer) as own:
        opened = await own.post("/v1/tickets", headers=_key(), json={
            "customer_id": survivor, "kind": "complaint", "channel": "app", "subject": "Parcel to Xqlane 5",
            "description": "Call me on 13900139000 - xqdesc", "category": "delivery"})
        assert opened.status_code == 201, opened.text
        ticket = opened.json()["ticket_id"]
        assert (await own.post(f"/v1/tickets/{ticket}/comments", headers=_key(),
                               json={"body": "I live at 8 Hanshan Street"})).status_code == 201
        assert (await own.post(f"/v1/tickets/{ticket}/attachments", json={
            "filename": "id-card-xqfile.jpg", "content_type": "image/jpeg", "size_bytes": 2048,
            "url": "https://files.example/xqfile/id-card-xqfile.jpg"})).status_code == 201
    async with tickets.client() as agent:
        assert (await agent.patch(f"/v1/tickets/{ticket}", json={"subject": "Parcel to Xqlane 6"})).status_code == 200
        assert (await agent.post(f"/v1/tickets/{ticket}/comments", headers=_key(),
                                 json={"body": "She sounded upset (xqnote)", "public": False})).status_code == 201
        assert (await agent.post(f"/v1/tickets/{ticket}/comments", headers=_key(),
                                 json={"body": "We are on it"})).status_code == 201
        resolved = await agent.post(f"/v1/tickets/{ticket}/transitions",
                                    json={"status": "resolved", "root_cause": "carrier"})
        assert resolved.status_code == 200, resolved.text
    async with tickets.client(as_customer) as own:
        assert (await own.post(f"/v1/tickets/{ticket}/csat", json={"score": 4, "comment": "thanks xqcsat"})
                ).status_code == 201
    # The points movements and ticket events reach the profile's timeline (with the agents' reasons).
    await _wait_applied(profile, {"crm.loyalty.points.adjusted": 1, "crm.loyalty.points.redeemed": 1,
                                  "crm.tickets.ticket.resolved": 1})
    await _wait_applied(churn, {"crm.tickets.ticket.opened": 1, "crm.tickets.ticket.resolved": 1})
    # The scan sees what is there: the agent's reason in the ledger and in the adjustment's stored answer.
    assert await _rows_holding(databases["loyalty"], ["lotus-lane"]) == [
        "idempotency_keys: ['lotus-lane']", "ledger: ['lotus-lane']"]
    amounts = await _ledger_amounts(databases["loyalty"])

    await _erase(profile, survivor)
    for service in (loyalty, tickets, churn):
        await _wait_applied(service, {"crm.profile.customer.erased": 1})

    for name, database in databases.items():
        assert await _rows_holding(database, WRITTEN) == [], name
    # The numbers stay: every ledger amount, the ledger equal to the balances, the profile's statistics,
    # the ticket with its category, root cause and rating.
    assert await _ledger_amounts(databases["loyalty"]) == amounts and await _books_balance(databases["loyalty"])
    async with profile.client() as agent:
        after = (await agent.get(f"/v1/profiles/{survivor}")).json()
    assert after["order_count"] == 1 and after["total_spent"] == {"CNY": "300.00"}
    async with tickets.client() as agent:
        kept = (await agent.get(f"/v1/tickets/{ticket}")).json()
        attachments = (await agent.get(f"/v1/tickets/{ticket}/attachments")).json()
    assert (kept["subject"], kept["description"], kept["category"], kept["root_cause"], kept["status"]) == (
        "(erased)", "", "delivery", "carrier", "resolved")
    assert attachments == []
    assert await databases["tickets"].fetchval("SELECT score FROM csat WHERE ticket_id = $1", ticket) == 4
    for table in ("churn_orders", "churn_activity", "churn_tickets", "churn_scores"):
        assert await databases["churn"].fetchval(
            f"SELECT count(*) FROM {table} WHERE customer_id = $1", survivor) == 0, table


async def test_erasing_a_survivor_erases_its_merged_duplicate_everywhere_and_a_duplicate_alone_is_refused(
        broker, make_database, start_service):
    databases, (profile, loyalty, tickets, churn) = _start(make_database, start_service)
    survivor, duplicate = new_customer_id(), new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [
        _customer(survivor, email="zhu.yingtai@example.com", name="Zhu Yingtai", city="Xqcity"),
        _customer(duplicate, email="liang.shanbo@example.com", name="Liang Shanbo", city="Xqcity")])
    await broker.publish(TOPIC_INTERACTIONS, [
        interaction(duplicate, kind="search", at=NOW - timedelta(days=2), attributes={"query": "jade-hairpin"})])
    await broker.publish(TOPIC_ORDERS, [
        order_event("paid", duplicate, f"o-{duplicate}", amount="200.00", at=NOW - timedelta(days=10))])
    await _wait_applied(loyalty, {"commerce.customer.registered": 2, "commerce.order.paid": 1})
    await _wait_applied(churn, {"commerce.order.paid": 1, "commerce.interaction.recorded": 1})
    async with loyalty.client() as agent:
        assert (await agent.post(f"/v1/loyalty/accounts/{duplicate}/adjustments", headers=_key(),
                                 json={"points": 120, "reason": "yuhang-sorry"})).status_code == 201
    async with tickets.client() as agent:
        assert (await agent.post("/v1/tickets", headers=_key(), json={
            "customer_id": duplicate, "kind": "return", "channel": "phone", "subject": "xqrefund for a mug"})
                ).status_code == 201
    await _wait_applied(profile, {"commerce.customer.registered": 2, "commerce.order.paid": 1,
                                  "commerce.interaction.recorded": 1, "crm.loyalty.points.adjusted": 1})
    await _wait_applied(churn, {"crm.tickets.ticket.opened": 1})
    async with profile.client(SUPERVISOR) as supervisor:
        merged = await supervisor.post(f"/v1/profiles/{survivor}/merge", headers=_key(), json={
            "duplicate_id": duplicate, "identifier": "phone", "reason": "same phone, merge-proof-xq"})
        assert merged.status_code == 200, merged.text
        of_duplicate = await supervisor.post(f"/v1/profiles/{duplicate}/erasure", headers=_key(),
                                             json={"reason": "request R-7"})
    assert of_duplicate.status_code == 409 and of_duplicate.json()["survivor_id"] == survivor
    assert (await _erase(profile, survivor))["merged_customer_ids"] == [duplicate]
    assert (await _erase(profile, survivor))["merged_customer_ids"] == [duplicate]  # again: harmless

    announced = [e for e in await broker.events_published_by(databases["profile"], TOPIC_PROFILE)
                 if e.type == "crm.profile.customer.erased"]
    assert [(e.subject, e.data["customer_id"], e.data["merged_customer_ids"]) for e in announced] == [
        (survivor, survivor, [duplicate])]
    for service in (loyalty, tickets, churn):
        await _wait_applied(service, {"crm.profile.customer.erased": 1})
    for name, database in databases.items():
        assert await _rows_holding(database, WRITTEN + DUPLICATE) == [], name
    for name in ("loyalty", "tickets", "churn"):
        assert await databases[name].fetch_texts("SELECT customer_id FROM erased_customers ORDER BY 1") == sorted(
            [survivor, duplicate]), name
    assert await databases["loyalty"].fetchval(
        "SELECT erased_at IS NOT NULL AND birthday IS NULL FROM accounts WHERE customer_id = $1", duplicate)
    assert await _books_balance(databases["loyalty"])


async def test_events_and_commands_after_an_erasure_store_the_numbers_but_no_personal_data(
        broker, make_database, start_service):
    databases, (profile, loyalty, tickets, churn) = _start(make_database, start_service)
    customer, never_seen = new_customer_id(), new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [
        _customer(customer, email="zhu.yingtai@example.com", name="Zhu Yingtai", city="Xqcity")])
    await broker.publish(TOPIC_ORDERS, [
        order_event("paid", customer, f"o-{customer}", amount="300.00", at=NOW - timedelta(days=20))])
    await _wait_applied(profile, {"commerce.customer.registered": 1, "commerce.order.paid": 1})
    async with tickets.client() as agent:
        opened = await agent.post("/v1/tickets", headers=_key(), json={
            "customer_id": customer, "kind": "enquiry", "channel": "phone", "subject": "Where is my order"})
    ticket = opened.json()["ticket_id"]
    await _erase(profile, customer)
    # An erasure that reaches loyalty before anything else about the customer (topics are not ordered
    # with each other), as the profile would announce it.
    await broker.publish(TOPIC_PROFILE, [CloudEvent(
        id=str(uuid.uuid4()), source="crm/profile", type="crm.profile.customer.erased", subject=never_seen,
        time=NOW, data={"customer_id": never_seen, "erased_at": NOW.isoformat(), "merged_customer_ids": []})])
    for service in (loyalty, tickets, churn):
        await _wait_applied(service, {"crm.profile.customer.erased": 2})

    # The shop goes on sending: identity with consents, interactions, orders.
    await broker.publish(TOPIC_CUSTOMERS, [
        _customer(customer, type_="updated", email="latexq@example.com", name="Latexq Zhu", city="Latexq"),
        _customer(never_seen, email="latexq.new@example.com", name="Latexq Wang", city="Latexq")])
    await broker.publish(TOPIC_INTERACTIONS, [
        interaction(customer, kind="search", at=NOW - timedelta(hours=2), attributes={"query": "late-search-xq"}),
        interaction(customer, kind="product_view", at=NOW - timedelta(hours=3),
                    attributes={"sku": "late-dup-xq", "category": "tea"})])
    await broker.publish(TOPIC_ORDERS, [
        order_event("paid", customer, f"o-late-{customer}", amount="50.00", at=NOW - timedelta(hours=1)),
        order_event("paid", never_seen, f"o-late-{never_seen}", amount="40.00", at=NOW - timedelta(hours=1))])
    await _wait_applied(profile, {"commerce.customer.updated": 1, "commerce.interaction.recorded": 2,
                                  "commerce.order.paid": 3})
    await _wait_applied(loyalty, {"commerce.customer.updated": 1, "commerce.customer.registered": 2,
                                  "commerce.order.paid": 3})
    await _wait_applied(churn, {"commerce.order.paid": 3, "commerce.interaction.recorded": 2})

    for name, database in databases.items():
        if name != "profile":  # the profile never erased never_seen, so it keeps what the shop sent
            assert await _rows_holding(database, WRITTEN + LATE) == [], name
    assert await _rows_holding(databases["profile"], [*WRITTEN, "late-search-xq", "late-dup-xq"]) == []
    async with profile.client() as agent:
        after = (await agent.get(f"/v1/profiles/{customer}")).json()
        timeline = (await agent.get(f"/v1/profiles/{customer}/timeline", params={"kind": "interaction"})).json()
        edit = await agent.patch(f"/v1/profiles/{customer}", json={"name": "Latexq Again"})
        note = await agent.post(f"/v1/profiles/{customer}/notes", json={"body": "latexq"}, headers=_key())
    # Counted, anonymously: the late order and both interactions; consents stay withdrawn.
    assert after["order_count"] == 2 and after["total_spent"] == {"CNY": "350.00"}
    assert (after["name"], after["email"], after["city"], after["birthday"]) == (None, None, None, None)
    assert (after["consents"]["email"]["granted"], after["consents"]["sms"]["granted"]) == (False, False)
    assert [(e["kind"], e["details"]) for e in timeline["items"]] == [
        ("interaction.search", {}), ("interaction.product_view", {})]
    assert (edit.status_code, note.status_code) == (409, 409)
    # Loyalty earns on the late order (pending, 1 point per CNY), with no birthday; churn recorded nothing.
    assert {row["customer_id"]: tuple(row)[1:] for row in await databases["loyalty"].fetch(
        "SELECT customer_id, pending, birthday, erased_at IS NOT NULL FROM accounts")} == {
        customer: (50, None, True), never_seen: (40, None, True)}
    assert await _books_balance(databases["loyalty"])
    # Their points expire like anyone's, but nobody is asked to tell them.
    expiry = await databases["loyalty"].fetchval(
        "SELECT min(expires_at) FROM lots WHERE customer_id = $1 AND state = 'available'", customer)
    async with loyalty.client(SUPERVISOR) as supervisor:
        notices = await supervisor.post("/v1/loyalty/jobs/expiry-notices",
                                        params={"as_of": (expiry - timedelta(days=1)).isoformat()})
    assert (notices.status_code, notices.json()["members"]) == (200, 0)
    for table in ("churn_orders", "churn_activity", "churn_scores", "churn_customers"):
        assert await databases["churn"].fetchval(
            f"SELECT count(*) FROM {table} WHERE customer_id = $1", customer) == 0, table
    # Nothing new is written about them by hand either.
    async with tickets.client() as agent:
        new_ticket = await agent.post("/v1/tickets", headers=_key(), json={
            "customer_id": customer, "kind": "enquiry", "channel": "phone", "subject": "latexq"})
        reply = await agent.post(f"/v1/tickets/{ticket}/comments", headers=_key(), json={"body": "latexq"})
    async with loyalty.client() as agent:
        adjustment = await agent.post(f"/v1/loyalty/accounts/{customer}/adjustments", headers=_key(),
                                      json={"points": 5, "reason": "latexq"})
    assert [r.status_code for r in (new_ticket, reply, adjustment)] == [409, 409, 409]
    assert [r.json()["type"].rsplit("/", 1)[-1] for r in (new_ticket, reply, adjustment)] == ["customer-erased"] * 3
