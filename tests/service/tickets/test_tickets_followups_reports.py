"""Follow-up tasks from churn warnings, erasure, and the supervisors' report against hand-computed figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_shared.events.catalogue import TOPIC_CHURN, TOPIC_LOYALTY, TOPIC_PROFILE
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import new_customer_id
from tests.service.tickets.conftest import SUPERVISOR, churn_changed, customer, tier_changed


async def test_a_high_risk_vip_gets_exactly_one_follow_up_when_the_warning_comes_twice(tickets):
    vip, regular = new_customer_id(), new_customer_id()
    now = datetime.now(UTC)
    await tickets.broker.publish(TOPIC_LOYALTY, [tier_changed(vip, "vip", now - timedelta(days=3))])
    await tickets.applied(1)  # another topic: no order with the churn events unless we wait
    warning = churn_changed(vip, "high", now)
    await tickets.broker.publish(TOPIC_CHURN, [
        warning,
        churn_changed(vip, "high", now, event_id=warning.id),            # redelivered
        churn_changed(vip, "high", now + timedelta(hours=2)),             # the same warning re-sent
        churn_changed(regular, "high", now)])                             # not a key customer
    await tickets.applied(5)
    async with tickets.service.client() as http:
        follow_ups = (await http.get("/v1/tickets", params={"customer_id": vip})).json()["items"]
        none = (await http.get("/v1/tickets", params={"customer_id": regular})).json()["items"]
    assert len(follow_ups) == 1 and none == []
    task = follow_ups[0]
    assert (task["kind"], task["channel"], task["tier"], task["churn_level"]) == ("follow_up", "system", "vip", "high")
    due = datetime.fromisoformat(task["sla"]["first_response"]["due_at"])
    assert abs((due - (now + timedelta(hours=24))).total_seconds()) < 0.01  # 24 wall-clock hours after the warning
    assert task["priority"] == "urgent"  # normal for the category, one up for VIP, one up for high churn risk
    # Thirty days later (the period) a new warning makes a new task.
    await tickets.broker.publish(TOPIC_CHURN, [churn_changed(vip, "high", now + timedelta(days=31), old="low")])
    await tickets.applied(6)
    async with tickets.service.client() as http:
        assert len((await http.get("/v1/tickets", params={"customer_id": vip})).json()["items"]) == 2


async def test_erasure_removes_free_text_and_keeps_the_figures(tickets):
    client_id = new_customer_id()
    async with tickets.service.client() as http:
        ticket = await tickets.open(http, client_id, description="Call me on +86 138 0000 0000")
        await http.post(f"/v1/tickets/{ticket['ticket_id']}/comments", json={"body": "Called, left a message"},
                        headers={"Idempotency-Key": "erase-test-0001"})
    await tickets.broker.publish(TOPIC_PROFILE, [CloudEvent.new(
        type="crm.profile.customer.erased", source="crm/profile", subject=client_id,
        data={"customer_id": client_id, "erased_at": datetime.now(UTC).isoformat()})])
    await tickets.applied(1)
    async with tickets.service.client() as http:
        after = (await http.get(f"/v1/tickets/{ticket['ticket_id']}")).json()
        comments = (await http.get(f"/v1/tickets/{ticket['ticket_id']}/comments")).json()
    assert after["description"] == "" and after["category"] == "delivery"
    assert [c["body"] for c in comments] == ["(erased)"]


async def test_the_report_equals_figures_computed_from_the_same_fixtures(tickets):
    await tickets.setup_queue("delivery-desk", ["delivery"], "round_robin", ["ann", "bob"])
    await tickets.setup_queue("quality-desk", ["product_quality"], "round_robin", ["cho"])
    fixtures = [  # (category, kind, root cause, respond?, resolve?, reopen?, csat)
        ("delivery", "complaint", "carrier delay", True, True, False, 5),
        ("delivery", "complaint", "carrier delay", True, True, True, 2),
        ("delivery", "complaint", "wrong address", False, True, False, 4),
        ("product_quality", "complaint", "defect", True, False, False, None),
        ("product_quality", "enquiry", None, True, True, False, 3),
        ("delivery", "return", None, False, False, False, None),
    ]
    since = datetime.now(UTC) - timedelta(minutes=1)
    created = []
    for category, kind, root_cause, respond, resolve, reopen, score in fixtures:
        client_id = new_customer_id()
        async with tickets.service.client() as http:
            ticket = await tickets.open(http, client_id, category=category, kind=kind)
            if respond:
                await http.post(f"/v1/tickets/{ticket['ticket_id']}/comments", json={"body": "On it"},
                                headers={"Idempotency-Key": f"reply-{ticket['ticket_id']}"})
            if resolve:
                await tickets.move(http, ticket["ticket_id"], "resolved", root_cause=root_cause)
            if reopen:
                await tickets.move(http, ticket["ticket_id"], "open")
                await tickets.move(http, ticket["ticket_id"], "resolved", root_cause=root_cause)
        if score is not None:
            async with tickets.service.client(customer(client_id)) as member:
                assert (await member.post(f"/v1/tickets/{ticket['ticket_id']}/csat",
                                          json={"score": score})).status_code == 201
        created.append(ticket)
    until = datetime.now(UTC) + timedelta(minutes=1)
    async with tickets.service.client(SUPERVISOR) as http:
        report = (await http.get("/v1/ticketing/reports",
                                 params={"since": since.isoformat(), "until": until.isoformat()})).json()
    async with tickets.service.client() as agent:
        forbidden = await agent.get("/v1/ticketing/reports",
                                    params={"since": since.isoformat(), "until": until.isoformat()})
    rows = await tickets.database.fetch("SELECT * FROM tickets")
    by_id = {r["ticket_id"]: r for r in rows}
    # Expected, from the fixtures and the stored timestamps.
    complaints: dict[tuple, int] = {}
    for category, kind, root_cause, _, resolve, *_ in fixtures:
        if kind == "complaint":  # the root cause is recorded when a ticket is resolved
            key = (category, root_cause if resolve else None)
            complaints[key] = complaints.get(key, 0) + 1
    assert {(c["category"], c["root_cause"]): c["tickets"] for c in report["complaints_by_category"]} == complaints
    responded = [r for r in rows if r["first_response_at"] is not None]
    resolved = [r for r in rows if r["resolved_at"] is not None]
    assert report["tickets"] == 6
    assert report["sla"]["first_response_met_pct"] == 100.0 and report["sla"]["first_response_measured"] == \
        len(responded) == 5  # resolving without a reply counts as the first response
    assert report["sla"]["resolution_met_pct"] == 100.0 and report["sla"]["resolution_measured"] == len(resolved) == 4
    expected_fr = sum((r["first_response_at"] - r["created_at"]).total_seconds() for r in responded) / len(responded)
    expected_res = sum((r["resolved_at"] - r["created_at"]).total_seconds() for r in resolved) / len(resolved)
    assert abs(report["avg_first_response_seconds"] - expected_fr) < 0.2
    assert abs(report["avg_resolution_seconds"] - expected_res) < 0.2
    assert report["reopen_rate"] == round(1 / 4, 4)
    scores: dict[str, list[int]] = {}
    for fixture, ticket in zip(fixtures, created, strict=True):
        if fixture[6] is not None:
            scores.setdefault(by_id[ticket["ticket_id"]]["assignee"], []).append(fixture[6])
    assert {c["agent"]: (c["responses"], c["average"]) for c in report["csat_by_agent"]} == \
        {agent: (len(s), round(sum(s) / len(s), 2)) for agent, s in scores.items()}
    assert {c["group_id"]: c["responses"] for c in report["csat_by_group"]} == {"delivery-desk": 3, "quality-desk": 1}
    # SLA met % per agent and per team, from the stored times of each one's tickets.
    for dimension, column, rows_key in (("sla_by_agent", "assignee", "agent"),
                                        ("sla_by_group", "group_id", "group_id")):
        expected = {}
        for key in {r[column] for r in rows}:
            own = [r for r in rows if r[column] == key]
            fr = [r for r in own if r["first_response_at"] is not None or r["fr_breached_at"] is not None]
            res = [r for r in own if r["resolved_at"] is not None or r["res_breached_at"] is not None]
            fr_met = [r for r in fr if r["first_response_at"] is not None and r["fr_breached_at"] is None
                      and r["first_response_at"] <= r["first_response_due_at"]]
            res_met = [r for r in res if r["resolved_at"] is not None and r["res_breached_at"] is None
                       and (r["resolution_due_at"] is None or r["resolved_at"] <= r["resolution_due_at"])]
            expected[key] = (len(own), len(fr), round(100 * len(fr_met) / len(fr), 2) if fr else None, len(res),
                             round(100 * len(res_met) / len(res), 2) if res else None)
        assert {c[rows_key]: (c["tickets"], c["first_response_measured"], c["first_response_met_pct"],
                              c["resolution_measured"], c["resolution_met_pct"]) for c in report[dimension]} == expected
    assert {c["group_id"] for c in report["sla_by_group"]} == {"delivery-desk", "quality-desk"}
    open_now = [r for r in rows if r["status"] in ("new", "open", "pending_customer")]
    assert report["backlog"]["open"] == len(open_now) == sum(report["backlog"]["by_priority"].values())
    assert forbidden.status_code == 403
