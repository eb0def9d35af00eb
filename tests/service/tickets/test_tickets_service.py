"""Tickets on the real service: creation, workflow, SLA clocks in business time, assignment, CSAT."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_TICKETS
from crm_tickets.domain.policy import BusinessCalendar

from tests.harness.events import new_customer_id
from tests.service.tickets.conftest import SUPERVISOR, customer, key

NEW_YORK_WEEKDAYS = {"timezone": "America/New_York",
                     "week": {str(d): [{"start": "09:00:00", "end": "17:00:00"}] for d in range(5)},
                     "holidays": ["2026-11-26", "2026-12-25"]}


async def test_creation_with_an_idempotency_key_stores_one_ticket(tickets):
    client_id = new_customer_id()
    body = {"customer_id": client_id, "kind": "return", "channel": "web", "subject": "Wrong size",
            "category": "product_quality", "order_id": "o-1", "items": [{"sku": "SHOE-42", "quantity": 1}]}
    retry = {"Idempotency-Key": str(uuid.uuid4())}
    async with tickets.service.client(customer(client_id)) as http:
        first = await http.post("/v1/tickets", json=body, headers=retry)
        again = await http.post("/v1/tickets", json=body, headers=retry)
        other = await http.post("/v1/tickets", json={**body, "subject": "x"}, headers=retry)
        no_key = await http.post("/v1/tickets", json=body)
        someone_else = await http.post("/v1/tickets", json={**body, "customer_id": "c-other"}, headers=key())
        set_priority = await http.post("/v1/tickets", json={**body, "priority": "urgent"}, headers=key())
        mine = (await http.get("/v1/tickets", params={"customer_id": client_id})).json()
    assert first.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert (other.status_code, no_key.status_code, someone_else.status_code, set_priority.status_code) == \
        (422, 422, 403, 403)
    assert first.json()["priority"] == "high" and first.json()["status"] == "new"  # no queue yet
    assert [t["ticket_id"] for t in mine["items"]] == [first.json()["ticket_id"]]
    assert await tickets.database.fetchval("SELECT count(*) FROM tickets") == 1


async def test_sla_due_times_are_business_hours_in_the_calendars_zone_and_pause_while_pending(tickets):
    await tickets.set_policy(calendar=NEW_YORK_WEEKDAYS)
    calendar = BusinessCalendar.model_validate(NEW_YORK_WEEKDAYS)
    async with tickets.service.client() as http:
        ticket = await tickets.open(http, new_customer_id(), category="delivery")  # normal: 480 / 2880 min
        created = datetime.fromisoformat(ticket["created_at"])
        assert datetime.fromisoformat(ticket["sla"]["first_response"]["due_at"]) == \
            calendar.add(created, timedelta(minutes=480))
        resolution_due = datetime.fromisoformat(ticket["sla"]["resolution"]["due_at"])
        assert resolution_due == calendar.add(created, timedelta(minutes=2880))

        await http.post(f"/v1/tickets/{ticket['ticket_id']}/comments", json={"body": "We are checking."},
                        headers=key())
        paused = (await tickets.move(http, ticket["ticket_id"], "pending_customer")).json()
        assert paused["sla"]["resolution"]["state"] == "paused" and paused["sla"]["resolution"]["due_at"] is None
        left = paused["sla"]["resolution"]["left_minutes"]
        assert abs(left - calendar.between(datetime.now(UTC), resolution_due).total_seconds() / 60) < 1
        # While paused, a scan far past the old due time breaches nothing about resolution.
        assert await tickets.scan(resolution_due + timedelta(days=30)) == 0
        async with tickets.service.client(customer(ticket["customer_id"])) as member:
            reply = await member.post(f"/v1/tickets/{ticket['ticket_id']}/comments",
                                      json={"body": "Here is the photo."}, headers=key())
        assert reply.status_code == 201
        resumed = (await http.get(f"/v1/tickets/{ticket['ticket_id']}")).json()
    assert resumed["status"] == "open" and resumed["sla"]["resolution"]["state"] == "running"
    new_due = datetime.fromisoformat(resumed["sla"]["resolution"]["due_at"])
    assert abs((calendar.between(datetime.now(UTC), new_due).total_seconds() / 60) - left) < 1
    assert resumed["sla"]["first_response"]["state"] == "met"


async def test_a_breach_is_announced_exactly_once_with_two_schedulers(tickets, start_service):
    second = start_service("tickets", tickets.database)
    async with tickets.service.client() as http:
        opened = [await tickets.open(http, new_customer_id(), category="payment") for _ in range(10)]
    later = datetime.now(UTC) + timedelta(days=30)
    counts = await asyncio.gather(*(tickets.scan(later, service) for service in
                                    (tickets.service, second, tickets.service, second)))
    assert sum(counts) == 20  # first response and resolution, for each of the ten
    events = await tickets.broker.events_published_by(tickets.database, TOPIC_TICKETS)
    breaches = [(e.data["ticket_id"], e.data["target"]) for e in events if e.type == "crm.tickets.ticket.sla_breached"]
    assert sorted(breaches) == sorted((t["ticket_id"], target) for t in opened
                                      for target in ("first_response", "resolution"))


async def test_metrics_show_open_tickets_by_priority_breaches_and_csat(tickets):
    async with tickets.service.client() as http:
        for category in ("payment", "payment", "delivery"):
            await tickets.open(http, new_customer_id(), category=category)
    await tickets.scan(datetime.now(UTC) + timedelta(days=30))

    async def refreshed() -> bool:
        return await tickets.service.metric("crm_tickets_sla_breaches_total") == 6
    from tests.harness.infra import wait_until
    await wait_until(refreshed, what="metrics refreshed")
    assert await tickets.service.metric("crm_tickets_open", priority="high") == 2
    assert await tickets.service.metric("crm_tickets_open", priority="normal") == 1
    assert await tickets.service.metric("crm_tickets_sla_breaches_total", target="resolution") == 3


async def test_a_warning_comes_before_the_breach_and_each_once(tickets):
    async with tickets.service.client() as http:
        ticket = await tickets.open(http, new_customer_id(), category="payment")
    ticket_id = ticket["ticket_id"]
    moments, = await tickets.database.fetch(
        "SELECT first_response_warn_at, first_response_due_at, resolution_warn_at FROM tickets WHERE ticket_id = $1",
        ticket_id)
    warn_at, due_at = moments["first_response_warn_at"], moments["first_response_due_at"]
    assert due_at == datetime.fromisoformat(ticket["sla"]["first_response"]["due_at"])
    # The scans below reach the first-response target only; the resolution clock warns later.
    assert warn_at < due_at < moments["resolution_warn_at"]

    assert await tickets.scan(warn_at - timedelta(seconds=1)) == 0
    assert await tickets.scan(warn_at) == 1
    assert await tickets.scan(warn_at) == 0
    async with tickets.service.client() as http:
        warned = (await http.get(f"/v1/tickets/{ticket_id}")).json()["sla"]["first_response"]
    assert (warned["warning_sent"], warned["breached"], warned["state"]) == (True, False, "running")
    assert await tickets.scan(due_at) == 1
    assert await tickets.scan(moments["resolution_warn_at"] - timedelta(seconds=1)) == 0
    async with tickets.service.client() as http:
        breached = (await http.get(f"/v1/tickets/{ticket_id}")).json()["sla"]["first_response"]
    assert (breached["warning_sent"], breached["breached"], breached["state"]) == (True, True, "breached")

    events = await tickets.broker.events_published_by(tickets.database, TOPIC_TICKETS)
    sla = [(e.type, e.subject, e.data["customer_id"], e.data["ticket_id"], e.data["target"],
            datetime.fromisoformat(e.data["due_at"]), datetime.fromisoformat(e.data["occurred_at"]))
           for e in events if e.type.startswith("crm.tickets.ticket.sla_")]
    customer_id = ticket["customer_id"]
    assert sla == [
        ("crm.tickets.ticket.sla_warning", customer_id, customer_id, ticket_id, "first_response", due_at, warn_at),
        ("crm.tickets.ticket.sla_breached", customer_id, customer_id, ticket_id, "first_response", due_at, due_at),
    ]


async def test_round_robin_and_least_loaded_over_three_agents(tickets):
    await tickets.setup_queue("delivery-desk", ["delivery"], "round_robin", ["ann", "bob", "cho"])
    await tickets.setup_queue("quality-desk", ["product_quality"], "least_loaded", ["dan", "eve", "fay"])
    async with tickets.service.client() as http:
        rr = [(await tickets.open(http, new_customer_id(), category="delivery"))["assignee"] for _ in range(5)]
        # Give dan two and eve one ticket by hand, then let least-loaded place three more.
        manual = [await tickets.open(http, new_customer_id(), category="other") for _ in range(3)]
        for ticket, agent in zip(manual, ["dan", "dan", "eve"], strict=True):
            answer = await http.post(f"/v1/tickets/{ticket['ticket_id']}/assignment", json={"agent_id": agent})
            assert answer.status_code == 200 and answer.json()["status"] == "open"
        ll = [(await tickets.open(http, new_customer_id(), category="product_quality"))["assignee"] for _ in range(3)]
    async with tickets.service.client(SUPERVISOR) as http:
        away = await http.put("/v1/ticketing/agents/bob/availability", json={"available": False})
    assert rr == ["ann", "bob", "cho", "ann", "bob"]
    assert ll == ["fay", "eve", "fay"]  # fay 0 → 1; eve 1 → 2 (tie with fay, by name); fay again
    assert away.status_code == 200
    async with tickets.service.client() as http:
        after = [(await tickets.open(http, new_customer_id(), category="delivery"))["assignee"] for _ in range(2)]
    assert after == ["cho", "ann"]  # bob is away
    # The load kept with each assignment and status change equals the tickets' own count.
    async with tickets.service.client() as http:
        await tickets.move(http, manual[0]["ticket_id"], "resolved")
        await http.post(f"/v1/tickets/{manual[1]['ticket_id']}/assignment", json={"agent_id": "fay"})
        loads = {a["agent_id"]: a["open_tickets"] for a in (await http.get("/v1/ticketing/agents")).json()}
    counted = {r["assignee"]: r["n"] for r in await tickets.database.fetch(
        "SELECT assignee, count(*) AS n FROM tickets WHERE status IN ('new', 'open', 'pending_customer') "
        "GROUP BY assignee")}
    assert loads == {agent: counted.get(agent, 0) for agent in loads} and loads["dan"] == 0


async def test_illegal_transitions_are_refused_with_409(tickets):
    async with tickets.service.client() as http:
        ticket = await tickets.open(http, new_customer_id())
        closed_early = await tickets.move(http, ticket["ticket_id"], "closed")
        resolved = await tickets.move(http, ticket["ticket_id"], "resolved", root_cause="carrier delay")
        pending_after = await tickets.move(http, ticket["ticket_id"], "pending_customer")
        closed = await tickets.move(http, ticket["ticket_id"], "closed")
        reopened = await tickets.move(http, ticket["ticket_id"], "open")
        history = (await http.get(f"/v1/tickets/{ticket['ticket_id']}/history")).json()
    assert closed_early.status_code == 409 and closed_early.headers["content-type"] == "application/problem+json"
    assert "cannot become closed" in closed_early.json()["detail"]
    assert resolved.status_code == 200 and resolved.json()["root_cause"] == "carrier delay"
    assert pending_after.status_code == 409
    assert closed.status_code == 200 and reopened.status_code == 200
    assert reopened.json()["reopened_count"] == 1 and reopened.json()["sla"]["resolution"]["state"] == "running"
    assert [h["action"] for h in history] == ["opened", "status", "status", "status"]


async def test_csat_once_after_resolution_by_the_ticket_s_customer(tickets):
    await tickets.setup_queue("delivery-desk", ["delivery"], "round_robin", ["ann"])
    client_id = new_customer_id()
    async with tickets.service.client() as agent:
        ticket = await tickets.open(agent, client_id)
    async with tickets.service.client(customer(client_id)) as member:
        early = await member.post(f"/v1/tickets/{ticket['ticket_id']}/csat", json={"score": 5})
    async with tickets.service.client() as agent:
        await tickets.move(agent, ticket["ticket_id"], "resolved")
    async with tickets.service.client(customer(new_customer_id())) as stranger:
        foreign = await stranger.post(f"/v1/tickets/{ticket['ticket_id']}/csat", json={"score": 1})
    async with tickets.service.client(Identity(subject="erp", role=Role.SERVICE, scopes=frozenset({
            "tickets:write"}))) as integration:
        by_service = await integration.post(f"/v1/tickets/{ticket['ticket_id']}/csat", json={"score": 1})
    async with tickets.service.client(customer(client_id)) as member:
        forged = await member.post(f"/v1/tickets/{ticket['ticket_id']}/csat",
                                   json={"score": 4, "recorded_by": "agent-9"})
        rated = await member.post(f"/v1/tickets/{ticket['ticket_id']}/csat", json={"score": 4, "comment": "quick"})
        twice = await member.post(f"/v1/tickets/{ticket['ticket_id']}/csat", json={"score": 1})
        bad = await member.post(f"/v1/tickets/{ticket['ticket_id']}/csat", json={"score": 6})
    assert (early.status_code, foreign.status_code, by_service.status_code, forged.status_code) == (409, 404, 403, 422)
    assert rated.status_code == 201 and rated.json()["agent"] == "ann" and rated.json()["group_id"] == "delivery-desk"
    assert rated.json()["recorded_by"] is None
    assert twice.status_code == 409 and bad.status_code == 422
    events = await tickets.broker.events_published_by(tickets.database, TOPIC_TICKETS)
    assert [(e.data["ticket_id"], e.data["score"], e.data["agent"], e.data["recorded_by"])
            for e in events if e.type == "crm.tickets.csat.submitted"] == [(ticket["ticket_id"], 4, "ann", None)]


async def test_an_agent_records_the_csat_answer_given_on_the_phone_marked_as_theirs(tickets):
    await tickets.setup_queue("delivery-desk", ["delivery"], "round_robin", ["ann"])
    client_id = new_customer_id()
    async with tickets.service.client() as agent:
        ticket = await tickets.open(agent, client_id)
        await tickets.move(agent, ticket["ticket_id"], "resolved")
    phone_agent = Identity(subject="agent-7", role=Role.AGENT)
    async with tickets.service.client(phone_agent) as agent:
        # Who recorded it comes from the token; the body cannot say.
        forged = await agent.post(f"/v1/tickets/{ticket['ticket_id']}/csat", json={"score": 2, "recorded_by": "ann"})
        recorded = await agent.post(f"/v1/tickets/{ticket['ticket_id']}/csat", json={"score": 2})
    async with tickets.service.client(customer(client_id)) as member:
        again = await member.post(f"/v1/tickets/{ticket['ticket_id']}/csat", json={"score": 5})
    assert forged.status_code == 422
    assert recorded.status_code == 201, recorded.text
    assert {k: v for k, v in recorded.json().items() if k != "submitted_at"} == {
        "ticket_id": ticket["ticket_id"], "score": 2, "comment": None, "agent": "ann", "group_id": "delivery-desk",
        "recorded_by": "agent-7"}
    assert again.status_code == 409  # one rating per ticket, whoever recorded it
    assert await tickets.database.fetch_texts(
        "SELECT concat_ws('/', score, agent, recorded_by) FROM csat WHERE ticket_id = $1", ticket["ticket_id"]) == \
        ["2/ann/agent-7"]
    events = await tickets.broker.events_published_by(tickets.database, TOPIC_TICKETS)
    assert [(e.data["ticket_id"], e.data["score"], e.data["agent"], e.data["recorded_by"])
            for e in events if e.type == "crm.tickets.csat.submitted"] == [(ticket["ticket_id"], 2, "ann", "agent-7")]
    async with tickets.service.client(SUPERVISOR) as http:
        report = (await http.get("/v1/ticketing/reports", params={
            "since": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "until": (datetime.now(UTC) + timedelta(days=1)).isoformat()})).json()
    assert report["csat_by_agent"] == [
        {"agent": "ann", "responses": 1, "average": 2.0, "satisfied_share": 0.0, "agent_recorded": 1}]


async def test_the_queue_filters_unassigned_tickets_and_those_due_soon(tickets):
    await tickets.setup_queue("filter-desk", ["returns"], "round_robin", ["ann"])
    async with tickets.service.client() as http:
        queued = await tickets.open(http, new_customer_id(), category="returns")  # assigned by the queue
        loose = await tickets.open(http, new_customer_id(), category="delivery")  # no queue: nobody
        answered = await tickets.open(http, new_customer_id(), category="delivery")
        await http.post(f"/v1/tickets/{answered['ticket_id']}/comments", json={"body": "On it"}, headers=key())
        waiting = await tickets.open(http, new_customer_id(), category="delivery")
        await http.post(f"/v1/tickets/{waiting['ticket_id']}/comments", json={"body": "A photo?"}, headers=key())
        await tickets.move(http, waiting["ticket_id"], "pending_customer")  # resolution clock paused

        async def ids(**params) -> set[str]:
            answer = await http.get("/v1/tickets", params={"status": "active", "limit": 200, **params})
            assert answer.status_code == 200, answer.text
            return {t["ticket_id"] for t in answer.json()["items"]}
        mine = {t["ticket_id"] for t in (queued, loose, answered, waiting)}
        unassigned = await ids(unassigned="true") & mine
        first_due = datetime.fromisoformat(loose["sla"]["first_response"]["due_at"])
        resolution_due = datetime.fromisoformat(answered["sla"]["resolution"]["due_at"])
        before_any = await ids(due_before=(first_due - timedelta(minutes=1)).isoformat()) & mine
        first_only = await ids(due_before=(first_due + timedelta(minutes=1)).isoformat()) & mine
        later = await ids(due_before=(resolution_due + timedelta(days=30)).isoformat()) & mine
        both = await http.get("/v1/tickets", params={"unassigned": "true", "assignee": "ann"})
        naive = await http.get("/v1/tickets", params={"due_before": "2026-12-01T10:00:00"})
    assert queued["assignee"] == "ann" and loose["assignee"] is None
    assert unassigned == {loose["ticket_id"], answered["ticket_id"], waiting["ticket_id"]}
    assert before_any == set()
    # Due within the first response's time: those not yet answered (the answered and the waiting
    # ones have met theirs, and the waiting one's resolution clock is paused).
    assert first_only == {queued["ticket_id"], loose["ticket_id"]}
    assert later == {queued["ticket_id"], loose["ticket_id"], answered["ticket_id"]}
    assert both.status_code == 422 and naive.status_code == 422
