"""Churn, loyalty and profile together through the broker and the gateway: a valuable customer
turning high-risk gets a win-back offer, and the agent sees the risk in the 360 and the profile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_churn.domain.model import PRIOR_VERSION
from crm_shared.events.catalogue import (
    TOPIC_CHURN,
    TOPIC_CUSTOMERS,
    TOPIC_INTERACTIONS,
    TOPIC_NOTIFICATIONS,
    TOPIC_ORDERS,
)
from crm_shared.events.envelope import from_kafka

from tests.harness.events import customer_registered, interaction, new_customer_id, order_event
from tests.harness.infra import Database, wait_until
from tests.service.gateway.conftest import bearer


async def test_a_valuable_customer_at_high_risk_gets_a_win_back_offer_once(broker, gateway_stack):
    stack = gateway_stack(upstreams=("profile", "loyalty", "tickets", "churn"))
    customer, small = new_customer_id(), new_customer_id()
    long_ago = datetime.now(UTC) - timedelta(days=120)
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer), customer_registered(small)])
    # One big order four months ago and silence since (spend over the programme's 1,000 threshold),
    # and a small spender in the same situation.
    await broker.publish(TOPIC_ORDERS, [order_event("paid", customer, "o-big", amount="2400.00", at=long_ago),
                                        order_event("paid", small, "o-small", amount="80.00", at=long_ago)])

    async with stack.client(bearer("agent", "agent-1")) as agent:
        async def churn_and_offer_seen() -> dict | None:
            view = (await agent.get(f"/v1/customers/{customer}")).json()
            ledger = (await agent.get(f"/v1/loyalty/accounts/{customer}/ledger")).json()
            bonus = [e for e in ledger.get("items", []) if e["kind"] == "bonus"]
            profile = view.get("profile", {}).get("data") or {}
            return view if bonus and profile.get("churn_level") == "high" else None

        view = await wait_until(churn_and_offer_seen, timeout_s=40, what="the win-back bonus and the profile's level")
        risk = (await agent.get(f"/v1/churn/customers/{customer}")).json()
        small_ledger = (await agent.get(f"/v1/loyalty/accounts/{small}/ledger")).json()["items"]

    part = view["churn"]
    assert part["status"] == "ok" and part["data"]["level"] == "high" == risk["level"]
    assert part["data"]["one_time_buyer"] and part["data"]["model_version"] == PRIOR_VERSION
    assert [e["kind"] for e in small_ledger if e["kind"] == "bonus"] == []  # not worth an offer
    # Still high after more events: no new level change, so no second offer.
    churn = stack.upstreams["churn"]
    applied = await churn.metric("crm_events_applied_total")
    await broker.publish(TOPIC_INTERACTIONS, [interaction(customer, at=datetime.now(UTC))])
    await wait_until(lambda: churn.metric_at_least(applied + 1, "crm_events_applied_total"), what="rescored")
    # Once churn's outbox is relayed its topic is final: one change, so loyalty has one offer to make.
    changes = await broker.events_published_by(Database(churn.env["DATABASE_URL"]), TOPIC_CHURN)
    assert [(e.subject, e.data["old_level"], e.data["new_level"]) for e in changes if e.subject == customer] == [
        (customer, None, "high")]

    async def offers() -> list[dict]:
        notes = await broker.read_to_end([TOPIC_NOTIFICATIONS])
        return [n.data for n in (from_kafka(r.value, r.headers) for r in notes) if n.data["kind"] == "win_back_offer"]
    found = await wait_until(offers, what="the win-back notification")
    assert [o["customer_id"] for o in found] == [customer] and found[0]["params"] == {"points": 500}

    async with stack.client(bearer("customer", customer)) as own:
        own_view = (await own.get(f"/v1/customers/{customer}")).json()
        direct = await own.get(f"/v1/churn/customers/{customer}")
    assert direct.status_code == 403  # the shop's view of the customer, not the customer's
    assert own_view["churn"]["status"] == "forbidden" and own_view["profile"]["status"] == "ok"
    assert own_view["complete"] is True  # a part the caller may not see is no failure
