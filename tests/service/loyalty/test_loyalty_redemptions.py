"""Redemptions and adjustments on the real loyalty service: never negative, never twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
from crm_shared.auth import Identity, Role

from tests.harness.events import new_customer_id
from tests.harness.infra import identity_headers
from tests.service.loyalty.conftest import NOW, SUPERVISOR, paid


async def _funded(loyalty, points: int) -> str:
    customer = new_customer_id()
    await loyalty.orders(paid(customer, f"o-{uuid.uuid4().hex[:8]}", f"{points}.00", at=NOW - timedelta(days=30)))
    await loyalty.applied(1)
    assert (await loyalty.account(customer))["available"] == points
    return customer


async def test_a_short_balance_is_refused_and_a_retried_key_returns_the_first_answer(loyalty):
    customer = await _funded(loyalty, 100)
    body = {"points": 60, "kind": "gift", "gift_sku": "MUG-1"}
    retry_key = {"Idempotency-Key": str(uuid.uuid4())}
    url = f"/v1/loyalty/accounts/{customer}/redemptions"
    async with loyalty.service.client() as http:
        first = await http.post(url, json=body, headers=retry_key)
        retry = await http.post(url, json=body, headers=retry_key)
        reused = await http.post(url, json={**body, "points": 10}, headers=retry_key)
        short = await http.post(url, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        no_key = await http.post(url, json=body)
        invalid = await http.post(url, json={"points": 5, "kind": "order_discount"},
                                  headers={"Idempotency-Key": str(uuid.uuid4())})
    assert first.status_code == 201 and first.json()["available_after"] == 40
    assert retry.status_code == 201 and retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert reused.status_code == 422
    assert short.status_code == 422 and short.headers["content-type"] == "application/problem+json"
    assert short.json()["type"].endswith("insufficient-points") and "only 40 available" in short.json()["detail"]
    assert no_key.status_code == 422 and invalid.status_code == 422
    assert (await loyalty.account(customer))["available"] == 40
    assert await loyalty.database.fetchval("SELECT count(*) FROM redemptions") == 1
    await loyalty.consistent()


async def test_100_concurrent_redemptions_against_a_balance_for_10_apply_exactly_10(loyalty):
    customer = await _funded(loyalty, 1000)
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=loyalty.service.url, headers=identity_headers(service="loyalty"), timeout=30,
                                 limits=limits) as http:
        answers = await asyncio.gather(*(loyalty.redeem(http, customer, 100) for _ in range(100)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == 10 and statuses.count(422) == 90, statuses
    account = await loyalty.account(customer)
    assert account["available"] == 0 and account["debt"] == 0
    assert await loyalty.database.fetchval("SELECT sum(points) FROM redemptions") == 1000
    await loyalty.consistent()


async def test_customers_redeem_only_their_own_points(loyalty):
    customer = await _funded(loyalty, 100)
    other = Identity(subject="c-other", role=Role.CUSTOMER, customer_id="c-other")
    owner = Identity(subject=customer, role=Role.CUSTOMER, customer_id=customer)
    async with loyalty.service.client(other) as http:
        foreign = await loyalty.redeem(http, customer, 10)
        peek = await http.get(f"/v1/loyalty/accounts/{customer}")
    async with loyalty.service.client(owner) as http:
        own = await loyalty.redeem(http, customer, 10)
        adjust = await http.post(f"/v1/loyalty/accounts/{customer}/adjustments", json={"points": 5, "reason": "nice"},
                                 headers={"Idempotency-Key": str(uuid.uuid4())})
    assert (foreign.status_code, peek.status_code, own.status_code, adjust.status_code) == (403, 403, 201, 403)


async def test_agents_adjust_within_their_limit_and_supervisors_above_it(loyalty):
    customer = await _funded(loyalty, 100)
    url = f"/v1/loyalty/accounts/{customer}/adjustments"

    def key():
        return {"Idempotency-Key": str(uuid.uuid4())}

    async with loyalty.service.client() as agent:
        small = await agent.post(url, json={"points": 200, "reason": "goodwill", "ticket_id": "T-1"}, headers=key())
        large = await agent.post(url, json={"points": 501, "reason": "goodwill"}, headers=key())
        too_much = await agent.post(url, json={"points": -301, "reason": "correction"}, headers=key())
        minus = await agent.post(url, json={"points": -50, "reason": "correction"}, headers=key())
    async with loyalty.service.client(SUPERVISOR) as supervisor:
        big = await supervisor.post(url, json={"points": 5000, "reason": "compensation", "ticket_id": "T-2"},
                                    headers=key())
    assert small.status_code == 201 and small.json()["available_after"] == 300
    assert large.status_code == 403 and "supervisor" in large.json()["detail"]
    assert too_much.status_code == 422
    assert minus.status_code == 201 and minus.json()["available_after"] == 250
    assert big.status_code == 201 and big.json()["available_after"] == 5250
    ledger = await loyalty.ledger(customer)
    assert [(e["kind"], e["points"], e["actor"], e["ticket_id"]) for e in ledger[-3:]] == [
        ("adjust", 200, "agent-test", "T-1"), ("adjust", -50, "agent-test", None), ("adjust", 5000, "sup-1", "T-2")]
    await loyalty.consistent()


async def test_an_agent_s_adjustments_are_limited_per_period_even_when_they_race(loyalty):
    """Issue 17, item 17: the per-request limit alone let an agent move any number of points in many
    requests. 20 concurrent adjustments of 100 points by one agent on two accounts against a period
    limit of 1,000 apply exactly 10; the 403 says why; supervisors and other agents are not counted."""
    customers = [new_customer_id(), new_customer_id()]
    await loyalty.orders(*(paid(c, f"o-{c}", "10.00", at=NOW - timedelta(days=30)) for c in customers))
    await loyalty.applied(2)
    async with loyalty.service.client(SUPERVISOR) as supervisor:
        programme = (await supervisor.get("/v1/loyalty/programme")).json()["config"]
        programme["adjustments"]["agent_period_limit"] = 1000
        assert (await supervisor.put("/v1/loyalty/programme", json={"config": programme})).status_code == 200
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=loyalty.service.url, headers=identity_headers(service="loyalty"), timeout=30,
                                 limits=limits) as agent:
        answers = await asyncio.gather(*(
            agent.post(f"/v1/loyalty/accounts/{customers[n % 2]}/adjustments",
                       json={"points": 100, "reason": "goodwill"}, headers=key()) for n in range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == 10 and statuses.count(403) == 10, statuses
    refused = next(a for a in answers if a.status_code == 403)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("adjustment-allowance-exhausted")
    assert "at most 1000 points per 24 hours; 1000 used" in refused.json()["detail"]
    assert [(await loyalty.account(c))["available"] for c in customers] == [510, 510]
    usage = await loyalty.database.fetch("SELECT actor, points FROM agent_adjustment_usage")
    assert [(r["actor"], r["points"]) for r in usage] == [("agent-test", 1000)]
    other_agent = Identity(subject="agent-2", role=Role.AGENT)
    async with loyalty.service.client(other_agent) as agent2, loyalty.service.client(SUPERVISOR) as supervisor:
        url = f"/v1/loyalty/accounts/{customers[0]}/adjustments"
        deduction = await agent2.post(url, json={"points": -10, "reason": "correction"}, headers=key())
        taken = await supervisor.post(url, json={"points": -450, "reason": "correction"}, headers=key())
        # A refused deduction counts nothing: the count is in the adjustment's own transaction.
        too_much = await agent2.post(url, json={"points": -100, "reason": "correction"}, headers=key())
        above = await supervisor.post(url, json={"points": 5000, "reason": "compensation"}, headers=key())
    assert [a.status_code for a in (deduction, taken, too_much, above)] == [201, 201, 422, 201]
    usage = await loyalty.database.fetch("SELECT actor, points FROM agent_adjustment_usage ORDER BY actor")
    assert [(r["actor"], r["points"]) for r in usage] == [("agent-2", 10), ("agent-test", 1000)]
    await loyalty.consistent()


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}
