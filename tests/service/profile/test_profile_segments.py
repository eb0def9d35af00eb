"""RFM and custom segments kept current from real events, with their events on the bus."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_ORDERS, TOPIC_PROFILE

from tests.harness.events import new_customer_id, order_event
from tests.harness.infra import wait_until

SUPERVISOR = Identity(subject="sup-1", role=Role.SUPERVISOR)
NOW = datetime.now(UTC).replace(microsecond=0)
TEA = [{"sku": "TEA-1", "category": "tea", "quantity": 1, "unit_price": "60.00"}]


async def _paid(broker, customer: str, *, days_ago: float, amount: str = "60.00", items=TEA) -> None:
    await broker.publish(TOPIC_ORDERS, [order_event("paid", customer, f"o-{uuid.uuid4().hex[:8]}", amount=amount,
                                                    items=items, at=NOW - timedelta(days=days_ago))])


async def _orders_are(service, counts: dict[str, int]) -> None:
    async def probe():
        async with service.client() as http:
            for customer, count in counts.items():
                response = await http.get(f"/v1/profiles/{customer}")
                if response.status_code != 200 or response.json()["order_count"] != count:
                    return False
        return True
    await wait_until(probe, what="orders applied")


async def _segment_events(broker, database, customer: str, *, rfm: bool) -> list[tuple[str, str]]:
    """This customer's segment events on the bus, RFM or custom ones, in order."""
    events = await broker.events_published_by(database, TOPIC_PROFILE)
    return [(e.type.rsplit(".", 1)[1], e.data["segment_id"]) for e in events
            if e.type.startswith("crm.profile.segment.") and e.subject == customer
            and e.data["segment_id"].startswith("rfm:") == rfm]


async def test_a_customers_rfm_segment_moves_as_their_orders_age(broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    star, others = new_customer_id(), [new_customer_id() for _ in range(5)]
    for days_ago in (30, 10, 1):
        await _paid(broker, star, days_ago=days_ago, amount="500.00")
    for i, other in enumerate(others):
        await _paid(broker, other, days_ago=60 + i, amount="20.00")
    await _orders_are(service, {star: 3, **dict.fromkeys(others, 1)})
    async with service.client(SUPERVISOR) as http:
        assert (await http.post("/v1/segments/refresh")).json()["scored"] == 6
        before = (await http.get(f"/v1/profiles/{star}")).json()["rfm"]
    assert (before["r"], before["f"], before["m"], before["segment"]) == (5, 5, 5, "champions")

    # Everybody else buys again today: the star's last order is now the oldest.
    for other in others:
        await _paid(broker, other, days_ago=0, amount="20.00")
    await _orders_are(service, dict.fromkeys(others, 2))
    async with service.client(SUPERVISOR) as http:
        await http.post("/v1/segments/refresh")
        after = (await http.get(f"/v1/profiles/{star}")).json()["rfm"]
        members = (await http.get("/v1/segments/rfm:cannot_lose/members")).json()
        listed = {s["segment_id"]: s["members"] for s in (await http.get("/v1/segments")).json()}
    assert (after["r"], after["segment"]) == (1, "cannot_lose")
    assert [m["customer_id"] for m in members["items"]] == [star]
    assert listed["rfm:cannot_lose"] == 1 and sum(v for k, v in listed.items() if k.startswith("rfm:")) == 6
    assert await _segment_events(broker, database, star, rfm=True) == [
        ("entered", "rfm:champions"), ("exited", "rfm:champions"), ("entered", "rfm:cannot_lose")]
    await service.exporting()
    assert await service.metric("crm_profile_segment_members", segment="rfm:cannot_lose") == 1


async def test_a_custom_segment_gains_and_loses_members_as_events_arrive(broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    lapsing, fresh = new_customer_id(), new_customer_id()
    await _paid(broker, lapsing, days_ago=40)
    await _paid(broker, fresh, days_ago=2)
    await _orders_are(service, {lapsing: 1, fresh: 1})
    rule = {"all": [{"bought": {"category": "tea", "within_days": 90}}, {"no_order_within_days": 30}]}
    async with service.client(SUPERVISOR) as http:
        created = await http.post("/v1/segments", json={"segment_id": "tea-lapsing", "name": "Tea lovers lapsing",
                                                         "rule": rule},
                                  headers={"Idempotency-Key": str(uuid.uuid4())})
        assert created.status_code == 201 and created.json()["members"] == 1
    # Defined: the lapsing customer is in. Then they buy again: out, as the event arrives.
    await _paid(broker, lapsing, days_ago=0)

    async def left():
        async with service.client() as http:
            return (await http.get(f"/v1/profiles/{lapsing}")).json()["segments"] == []
    await wait_until(left, what="left the segment when the new order arrived")
    # A big spender tagged vip enters a second segment through an agent's edit.
    async with service.client(SUPERVISOR) as http:
        vip_rule = {"all": [{"has_tag": "vip"}, {"field": "net_spent", "op": ">=", "value": 100}]}
        await http.post("/v1/segments", json={"segment_id": "vip-spenders", "name": "VIP spenders", "rule": vip_rule},
                        headers={"Idempotency-Key": str(uuid.uuid4())})
        assert (await http.patch(f"/v1/profiles/{lapsing}", json={"tags": ["vip"]})).status_code == 200
        profile = (await http.get(f"/v1/profiles/{lapsing}")).json()
        members = (await http.get("/v1/segments/vip-spenders/members")).json()
    assert profile["segments"] == ["vip-spenders"]
    assert [m["customer_id"] for m in members["items"]] == [lapsing]
    assert await _segment_events(broker, database, lapsing, rfm=False) == [
        ("entered", "tea-lapsing"), ("exited", "tea-lapsing"), ("entered", "vip-spenders")]
    assert await _segment_events(broker, database, fresh, rfm=False) == []


async def test_invalid_rules_are_refused_and_change_nothing(broker, make_database, start_service):
    database = make_database("profile")
    service = start_service("profile", database)
    bad_rules = [
        {"field": "favourite_colour", "op": "=", "value": "red"},
        {"field": "city", "op": ">", "value": "Xi'an"},
        {"field": "order_count", "op": ">=", "value": "many"},
        {"all": []},
        {"bought": {"category": "tea", "within_days": 0}},
        {"field": "order_count", "op": "~", "value": 1},
        {"all": [{"has_tag": "vip"}], "drop": "table"},
    ]
    async with service.client(SUPERVISOR) as http:
        for rule in bad_rules:
            response = await http.post("/v1/segments", json={"segment_id": "bad-one", "name": "x", "rule": rule},
                                       headers={"Idempotency-Key": str(uuid.uuid4())})
            assert response.status_code == 422, rule
            assert response.headers["content-type"] == "application/problem+json"
        reserved = await http.post("/v1/segments", json={"segment_id": "rfm-mine", "name": "x",
                                                          "rule": {"has_tag": "a"}},
                                   headers={"Idempotency-Key": str(uuid.uuid4())})
        assert reserved.status_code == 422
    async with service.client() as http:  # an agent may read segments but not define them
        assert (await http.post("/v1/segments", json={"segment_id": "mine", "name": "x", "rule": {"has_tag": "a"}},
                                headers={"Idempotency-Key": str(uuid.uuid4())})).status_code == 403
    assert await database.fetchval("SELECT count(*) FROM segments") == 0
