"""Profile, loyalty and tickets together through the broker and the gateway: a supervisor merges
a duplicate and the survivor's 360 shows its points and tickets; an unmerge gives them back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS

from tests.harness.events import customer_registered, new_customer_id, order_event
from tests.harness.infra import wait_until
from tests.service.gateway.conftest import bearer


def _view(view: dict) -> tuple[int | None, int | None, set[str]]:
    loyalty = view["loyalty"].get("data") or {}
    profile = view["profile"].get("data") or {}
    tickets = (view["open_tickets"].get("data") or {}).get("items", [])
    return loyalty.get("available"), profile.get("order_count"), {t["ticket_id"] for t in tickets}


async def test_the_survivors_360_shows_the_duplicates_points_and_tickets_until_unmerged(broker, gateway_stack):
    stack = gateway_stack(upstreams=("profile", "loyalty", "tickets"))
    keep, dup = new_customer_id(), new_customer_id()
    month_ago = datetime.now(UTC) - timedelta(days=30)
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(keep, email="wang.fang@example.com"),
                                           customer_registered(dup, email="Wang.Fang@Example.com")])
    await broker.publish(TOPIC_ORDERS, [order_event("paid", keep, "o-keep", amount="200.00", at=month_ago),
                                        order_event("paid", dup, "o-dup", amount="500.00", at=month_ago)])
    async with stack.client(bearer("agent", "agent-1")) as agent, \
            stack.client(bearer("supervisor", "sup-1")) as supervisor:
        opened = await agent.post("/v1/tickets", json={
            "customer_id": dup, "kind": "complaint", "channel": "phone", "subject": "Parcel late",
            "category": "delivery"}, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert opened.status_code == 201, opened.text
        ticket = opened.json()["ticket_id"]

        async def seen(customer: str, expected: tuple) -> bool:
            return _view((await agent.get(f"/v1/customers/{customer}")).json()) == expected
        await wait_until(lambda: seen(dup, (500, 1, {ticket})), timeout_s=30, what="the duplicate's points")
        await wait_until(lambda: seen(keep, (200, 1, set())), timeout_s=30, what="the survivor's points")

        merged = await supervisor.post(f"/v1/profiles/{keep}/merge", json={
            "duplicate_id": dup, "identifier": "email", "reason": "same shopper, verified on the phone"},
            headers={"Idempotency-Key": str(uuid.uuid4())})
        assert merged.status_code == 200, merged.text
        await wait_until(lambda: seen(keep, (700, 2, {ticket})), timeout_s=30, what="the merge in the 360")
        assert _view((await agent.get(f"/v1/customers/{dup}")).json())[0::2] == (0, set())

        unmerged = await supervisor.post(f"/v1/profiles/{keep}/unmerge", json={
            "duplicate_id": dup, "reason": "two shoppers sharing an e-mail"},
            headers={"Idempotency-Key": str(uuid.uuid4())})
        refused = await agent.post(f"/v1/profiles/{keep}/unmerge", json={"duplicate_id": dup, "reason": "agent"},
                                   headers={"Idempotency-Key": str(uuid.uuid4())})
        assert unmerged.status_code == 200, unmerged.text
        assert refused.status_code == 403
        await wait_until(lambda: seen(dup, (500, 1, {ticket})), timeout_s=30, what="the unmerge in the 360")
        assert _view((await agent.get(f"/v1/customers/{keep}")).json()) == (200, 1, set())
