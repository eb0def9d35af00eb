"""The churn service on the real database and broker: a refit on a synthetic shop whose churners
are known, rescoring on events, level-change events, one-time buyers, listing, bad input."""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from crm_churn.domain.model import PRIOR_VERSION, auc
from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CHURN, TOPIC_INTERACTIONS, TOPIC_ORDERS, TOPIC_PROFILE, TOPIC_TICKETS
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import interaction, new_customer_id, order_event
from tests.harness.infra import publish_raw, wait_until
from tests.harness.shop import Ticket, sla_breached, synthetic_shop, ticket_event
from tests.service.churn.conftest import NOW, SUPERVISOR


def _by_topic(pairs):
    grouped = defaultdict(list)
    for topic, event in pairs:
        grouped[topic].append(event)
    return grouped


async def test_a_refit_on_a_shop_whose_churners_are_known_ranks_them_first(churn):
    """Through Kafka: the whole history of 400 customers as events, then a refit. The backtest's
    holdout AUC and the live scores against the known drop-outs are both at least 0.8."""
    shop = synthetic_shop(400, now=NOW, seed=11, browse_every_days=8.0, prefix="k")
    events = shop.events()
    for topic, batch in _by_topic(events).items():
        await churn.broker.publish(topic, batch)
    await churn.applied(len(events), timeout_s=240)

    model = await churn.refit()
    report = model["report"]
    assert model["kind"] == "logistic" and report["method"] == "time_split", report
    assert report["holdout"]["auc"] >= 0.8, report
    assert 0 <= report["holdout"]["calibration_error"] <= 0.15, report
    assert report["holdout"]["precision_at_top_10pct"] >= 0.8, report
    bins = report["holdout"]["calibration"]  # the reliability diagram, bin by bin
    assert sum(b["customers"] for b in bins) == report["holdout"]["customers"]
    assert all(0 <= b["mean_score"] <= 1 and 0 <= b["churn_rate"] <= 1 for b in bins)
    assert set(model["params"]["bgnbd"]) == {"r", "alpha", "a", "b"}
    assert model["rescored"] == 400

    truth = shop.churned_by(NOW)
    scores, churned = [], []
    versions = set()
    async with churn.service.client() as http:
        for customer_id, dropped in truth.items():
            body = (await http.get(f"/v1/churn/customers/{customer_id}")).json()
            scores.append(body["score"])
            churned.append(dropped)
            versions.add(body["model_version"])
        current = (await http.get("/v1/churn/model")).json()
    assert auc(np.array(scores), np.array(churned)) >= 0.8
    assert versions == {model["version"]} == {current["version"]}
    assert current["report"]["holdout"] == report["holdout"]


async def _seeded(churn, customers: int = 1500, seed: int = 5):
    shop = synthetic_shop(customers, now=NOW, seed=seed, prefix=f"p{seed}")
    await churn.seed(shop)
    return shop, await churn.refit()


async def test_a_complaint_with_an_sla_breach_raises_the_score_and_is_among_the_reasons(churn):
    shop, model = await _seeded(churn)
    assert model["report"]["coefficients"]["sla_breaches_90d"] > 0, model["report"]
    with_tickets = {t.customer_id for t in shop.tickets}
    loyal = next(c for c, d in shop.dropped_at.items() if d is None and c not in with_tickets)
    before = await churn.score(loyal)
    assert before is not None and not {"sla_breaches_90d", "complaints_90d"} & {r["factor"] for r in before["reasons"]}

    complaint = Ticket(f"t-{uuid.uuid4().hex[:8]}", loyal, "complaint", NOW - timedelta(hours=30),
                       NOW - timedelta(hours=2), None, None)
    await churn.broker.publish(TOPIC_TICKETS, [ticket_event("opened", complaint, complaint.opened_at),
                                               sla_breached(complaint, complaint.breached_at)])

    async def rescored_with_the_breach():
        after = await churn.score(loyal)
        return after if "sla_breaches_90d" in {r["factor"] for r in after["reasons"]} else None
    after = await wait_until(rescored_with_the_breach, what="the breach among the reasons")
    assert after["score"] > before["score"]
    factors = {r["factor"]: r for r in after["reasons"]}
    assert factors["sla_breaches_90d"]["contribution"] > 0
    assert factors["sla_breaches_90d"]["detail"] == "tickets with a missed SLA in 90 days: 1"
    assert factors["complaints_90d"]["detail"] == "complaints in 90 days: 1"
    shown = after["indicators"]
    assert (shown["complaints_90d"], shown["sla_breaches_90d"], shown["open_tickets"]) == (1, 1, 1)
    assert before["indicators"]["complaints_90d"] == 0


async def test_the_level_change_event_fires_once_per_change_not_on_every_event(churn):
    shop, model = await _seeded(churn)
    orders = defaultdict(list)
    for customer_id, order_id, at, _ in shop.orders:
        orders[customer_id].append((at, order_id))
    gone = next(c for c, d in shop.dropped_at.items()
                if d is not None and d < NOW - timedelta(days=200) and len(orders[c]) >= 3)
    assert (await churn.score(gone))["level"] == "high"
    last_order = max(orders[gone])[1]
    applied = 0
    levels = ["high"]

    async def send(topic: str, event: CloudEvent) -> None:
        nonlocal applied
        await churn.broker.publish(topic, [event])
        applied += 1
        await churn.applied(applied)
        levels.append((await churn.score(gone))["level"])

    # Two small refunds and a cancellation of an order the shop never paid: rescored, same level.
    for _ in range(2):
        await send(TOPIC_ORDERS, order_event("refunded", gone, last_order, refund_amount="1.00", at=NOW))
    await send(TOPIC_ORDERS, order_event("cancelled", gone, "o-never-paid", at=NOW))
    assert levels == ["high"] * 4
    # The customer comes back: browses, then orders (delivered three times).
    for minutes in range(100, 0, -10):
        await send(TOPIC_INTERACTIONS, interaction(gone, at=NOW - timedelta(minutes=minutes)))
    comeback = order_event("paid", gone, "o-comeback", amount="88.00", at=NOW - timedelta(minutes=5))
    await send(TOPIC_ORDERS, comeback)
    await send(TOPIC_ORDERS, comeback.model_copy(update={"id": str(uuid.uuid4())}))  # the same order re-sent
    await send(TOPIC_ORDERS, comeback)                                               # redelivered
    after = await churn.score(gone)
    assert after["level"] == "low", (levels, after)
    assert levels[-3] == levels[-2] == levels[-1]

    # One event per change of level, none for the events that left it where it was.
    transitions = [(None, "high")] + [(a, b) for a, b in itertools.pairwise(levels) if a != b]
    everybody = await churn.broker.read_events(TOPIC_CHURN, expect=len(shop.dropped_at) + len(transitions) - 1,
                                               timeout_s=60)
    mine = [e.data for e in everybody if e.subject == gone]
    assert [(d["old_level"], d["new_level"]) for d in mine] == transitions
    assert mine[-1]["model_version"] == model["version"]
    assert mine[-1]["score"] == pytest.approx(after["score"], abs=1e-3)  # rescored since, seconds later
    assert len(everybody) == len(shop.dropped_at) + len(transitions) - 1  # nobody else changed


async def test_one_time_buyers_get_a_risk_that_rises_with_their_silence(churn):
    """BG/NBD says P(alive) = 1 for anyone without a repeat purchase; the score must not."""
    await _seeded(churn)
    fresh, silent = new_customer_id(), new_customer_id()
    await churn.broker.publish(TOPIC_ORDERS, [
        order_event("paid", fresh, "o-fresh", at=NOW - timedelta(days=3)),
        order_event("paid", silent, "o-silent", at=NOW - timedelta(days=300))])
    await churn.applied(2)
    recent, old = await churn.score(fresh), await churn.score(silent)
    assert recent["one_time_buyer"] and old["one_time_buyer"]
    assert recent["p_alive"] == old["p_alive"] == 1.0
    assert old["score"] > recent["score"] + 0.2
    assert old["level"] == "high"
    assert "silence_one_time" in {r["factor"] for r in old["reasons"]}


async def test_p_alive_falls_as_a_repeat_buyers_silence_grows(churn):
    await _seeded(churn)
    customers = {}
    events = []
    for silence in (10, 100, 250):
        customer_id = new_customer_id()
        customers[silence] = customer_id
        events += [order_event("paid", customer_id, f"o-{customer_id}-{k}",
                               at=NOW - timedelta(days=silence + 60 - 30 * k)) for k in range(3)]
    await churn.broker.publish(TOPIC_ORDERS, events)
    await churn.applied(len(events))
    scored = [await churn.score(customers[s]) for s in (10, 100, 250)]
    alive = [s["p_alive"] for s in scored]
    assert alive[0] > alive[1] > alive[2], alive
    assert scored[0]["score"] < scored[1]["score"] < scored[2]["score"]
    assert scored[0]["expected_orders_90d"] > scored[2]["expected_orders_90d"]
    assert not scored[0]["one_time_buyer"]
    assert [round(s["indicators"]["days_since_last_order"]) for s in scored] == [10, 100, 250]
    assert {s["indicators"]["mean_gap_days"] for s in scored} == {30.0}
    assert {s["indicators"]["orders"] for s in scored} == {3}


async def test_customers_at_risk_are_listed_by_value_at_risk_in_pages(churn):
    await _seeded(churn, customers=600)
    high = await churn.database.fetchval("SELECT count(*) FROM churn_scores WHERE level = 'high'")
    assert high > 100
    seen, values, cursor = [], [], None
    async with churn.service.client() as http:
        while True:
            answer = await http.get("/v1/churn/customers", params={"level": "high", "limit": 40,
                                                                   **({"cursor": cursor} if cursor else {})})
            assert answer.status_code == 200, answer.text
            page = answer.json()
            assert all(item["level"] == "high" for item in page["items"])
            seen += [item["customer_id"] for item in page["items"]]
            values += [float(item["value_at_risk"]) for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        by_score = (await http.get("/v1/churn/customers", params={"sort": "score", "limit": 100})).json()["items"]
    assert len(seen) == len(set(seen)) == high
    assert values == sorted(values, reverse=True)
    assert [i["score"] for i in by_score] == sorted((i["score"] for i in by_score), reverse=True)
    assert {i["level"] for i in by_score} == {"high"}  # the 100 highest scores of 600 customers


    # The distribution: the same scores counted per level and in ten bins, value at risk summed.
    rows = await churn.database.fetch("SELECT level, score, currency, value_at_risk FROM churn_scores")
    async with churn.service.client(Identity(subject="m-1", role=Role.MARKETER)) as http:
        spread = (await http.get("/v1/churn/distribution")).json()
    async with churn.service.client(Identity(subject="c-1", role=Role.CUSTOMER, customer_id="c-1")) as http:
        assert (await http.get("/v1/churn/distribution")).status_code == 403
    assert spread["customers"] == len(rows)
    levels = {r["level"]: r for r in spread["by_level"]}
    for level in ("low", "medium", "high"):
        own = [r for r in rows if r["level"] == level]
        assert levels[level]["customers"] == len(own)
        assert {c: Decimal(v) for c, v in levels[level]["value_at_risk"].items()} == {
            c: sum(r["value_at_risk"] for r in own if r["currency"] == c) for c in {r["currency"] for r in own}
            if c is not None}
    assert [b["customers"] for b in spread["score_bins"]] == [
        sum(1 for r in rows if min(int(r["score"] * 10), 9) == b) for b in range(10)]
    assert spread["score_bins"][0]["from"] == 0.0 and spread["score_bins"][9]["to"] == 1.0


async def test_before_the_first_fit_the_prior_scores_and_a_refit_needs_enough_history(churn):
    customer = new_customer_id()
    await churn.broker.publish(TOPIC_ORDERS, [order_event("paid", customer, "o-first", at=NOW - timedelta(days=20))])
    await churn.applied(1)
    score = await churn.score(customer)
    assert score["model_version"] == PRIOR_VERSION and score["one_time_buyer"]
    async with churn.service.client(SUPERVISOR) as http:
        refused = await http.post("/v1/churn/model/refit")
        model = (await http.get("/v1/churn/model")).json()
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["customers"] == 1
    assert model["version"] == PRIOR_VERSION and model["kind"] == "prior"
    assert model["params"]["bgnbd"] == {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


async def test_bad_requests_and_poison_records_get_clear_answers(churn):
    customer = new_customer_id()
    await publish_raw(churn.broker, TOPIC_ORDERS, customer.encode(), b'{"not": "an event"')
    await churn.broker.publish(TOPIC_ORDERS, [order_event("paid", customer, "o-after-poison", at=NOW)])
    await churn.applied(1)
    dead = await churn.broker.read_all(f"{TOPIC_ORDERS}.crm-churn-{churn.broker.namespace}.dlq", expect=1)
    assert len(dead) == 1
    assert await churn.score(customer) is not None  # the consumer went on
    async with churn.service.client() as http:
        unknown = await http.get(f"/v1/churn/customers/{new_customer_id()}")
        bad_cursor = await http.get("/v1/churn/customers", params={"cursor": "nonsense"})
        bad_level = await http.get("/v1/churn/customers", params={"level": "extreme"})
        too_many = await http.get("/v1/churn/customers", params={"limit": 10_000})
        agent_refit = await http.post("/v1/churn/model/refit")
    for answer, status in ((unknown, 404), (bad_cursor, 422), (bad_level, 422), (too_many, 422), (agent_refit, 403)):
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    async with churn.service.client(SUPERVISOR.__class__(subject=customer, role=SUPERVISOR.role.CUSTOMER,
                                                         customer_id=customer)) as own:
        assert (await own.get(f"/v1/churn/customers/{customer}")).status_code == 403


async def test_cancellation_erasure_and_merge_change_who_is_scored(churn):
    erased, survivor, duplicate, cancelled = (new_customer_id() for _ in range(4))
    await churn.broker.publish(TOPIC_ORDERS, [
        order_event("paid", cancelled, "o-c", at=NOW - timedelta(days=2)),
        order_event("paid", erased, "o-e", at=NOW - timedelta(days=5)),
        order_event("paid", survivor, "o-s", at=NOW - timedelta(days=40)),
        order_event("paid", duplicate, "o-d", at=NOW - timedelta(days=10))])
    await churn.applied(4)
    assert (await churn.score(survivor))["one_time_buyer"] and await churn.score(cancelled) is not None
    # An order cancelled after payment is no purchase: a customer left without one is not scored.
    await churn.broker.publish(TOPIC_ORDERS, [order_event("cancelled", cancelled, "o-c", at=NOW)])
    await churn.applied(5)
    assert await churn.score(cancelled) is None
    await churn.broker.publish(TOPIC_PROFILE, [
        CloudEvent.new(type="crm.profile.customer.erased", source="crm/profile", subject=erased,
                       data={"customer_id": erased, "erased_at": NOW.isoformat()}),
        CloudEvent.new(type="crm.profile.customer.merged", source="crm/profile", subject=survivor,
                       data={"customer_id": survivor, "merged_customer_id": duplicate, "merged_at": NOW.isoformat()})])
    await churn.applied(7)
    assert await churn.score(erased) is None and await churn.score(duplicate) is None
    assert await churn.database.fetchval("SELECT count(*) FROM churn_orders WHERE customer_id = $1", erased) == 0
    merged = await churn.score(survivor)
    assert not merged["one_time_buyer"] and merged["expected_orders_90d"] > 0


async def test_metrics_count_customers_by_level_refits_and_scoring(churn):
    await _seeded(churn, customers=300)
    levels = await churn.database.fetch("SELECT level, count(*) AS n FROM churn_scores GROUP BY level")

    async def reported() -> bool:
        for row in levels:
            if await churn.service.metric("crm_churn_customers", level=row["level"]) != row["n"]:
                return False
        return True
    await wait_until(reported, what="customers by level")
    assert await churn.service.metric("crm_churn_refit_duration_seconds_count") == 1
    assert await churn.service.metric("crm_churn_scored_total", trigger="refit") == 300
    assert await churn.service.metric("crm_churn_model_auc") >= 0.8
    await churn.broker.publish(TOPIC_ORDERS, [order_event("paid", new_customer_id(), "o-metric", at=NOW)])
    await churn.applied(1)
    assert await churn.service.metric("crm_churn_scored_total", trigger="event") == 1
