"""Use-case scenarios of the tickets service, each ``async def scenario_x(uow)`` on a fresh database.

They run on the in-memory unit of work (tests/unit/tickets/test_usecases.py) and on the real one
over PostgreSQL (tests/service/tickets/test_tickets_usecases.py): the same behaviour both ways is
what keeps the fake honest. A scenario never commits; it asserts on what the use cases return and
on what the repository reads back in the same unit of work.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from crm_shared.errors import ConflictError, CustomerErased, NotFoundError
from crm_tickets.domain.policy import DEFAULT_POLICY, IllegalTransition, StalePolicy
from crm_tickets.domain.workflow import AlreadyRated, NotResolved
from crm_tickets.usecases import admin, events, sla, tickets, workflow
from crm_tickets.usecases.policy import PolicyStore

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # Monday 10:00 in Asia/Shanghai, the default calendar


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _policies(uow) -> PolicyStore:
    store = PolicyStore()
    await store.seed(uow)
    return store


async def _open(uow, store: PolicyStore, customer_id: str, *, category: str = "delivery", at: datetime = NOW,
                **fields):
    return await tickets.create_ticket(uow, store, fields={
        "customer_id": customer_id, "kind": "complaint", "channel": "phone", "subject": "Parcel late",
        "category": category, "items": [], **fields}, actor="agent-1", now=at, follow_merges=True)


async def _queue(uow, group_id: str, strategy: str, agents: list[str], skills: list[str]) -> None:
    await admin.put_group(uow, {"group_id": group_id, "name": group_id, "skills": skills, "strategy": strategy})
    for agent in agents:
        await admin.put_agent(uow, agent, {"name": agent, "groups": [group_id], "available": True})


async def scenario_opening_assigns_round_robin_with_business_hours_clocks(uow):
    store = await _policies(uow)
    group = _id("q")
    await _queue(uow, group, "round_robin", ["a1", "a2"], [group])
    rows = [await _open(uow, store, _id("c"), category=group) for _ in range(3)]
    assert [r.assignee for r in rows] == ["a1", "a2", "a1"]
    assert {r.status for r in rows} == {"open"} and {r.group_id for r in rows} == {group}
    # "other" categories are normal: 480 business minutes to a first response, from 10:00 Monday.
    assert rows[0].priority == "normal" and not rows[0].priority_overridden
    assert rows[0].first_response_due_at == DEFAULT_POLICY.calendar.add(NOW, timedelta(minutes=480))
    loads = {a["agent_id"]: a["open_tickets"] for a in await admin.agents(uow)}
    assert loads == {"a1": 2, "a2": 1}
    assert [h["action"] for h in await tickets.history(uow, rows[0].ticket_id)] == ["opened"]


async def scenario_least_loaded_and_reassignment(uow):
    store = await _policies(uow)
    group = _id("q")
    await _queue(uow, group, "least_loaded", ["b1", "b2"], [group])
    first = await _open(uow, store, _id("c"), category=group)
    second = await _open(uow, store, _id("c"), category=group)
    assert (first.assignee, second.assignee) == ("b1", "b2")
    moved = await workflow.reassign(uow, ticket_id=first.ticket_id, agent_id="b2", group_id=None, actor="sup",
                                    now=NOW)
    assert moved.assignee == "b2"
    assert {a["agent_id"]: a["open_tickets"] for a in await admin.agents(uow)} == {"b1": 0, "b2": 2}
    with pytest.raises(NotFoundError):
        await workflow.reassign(uow, ticket_id=first.ticket_id, agent_id="nobody", group_id=None, actor="sup",
                                now=NOW)
    with pytest.raises(NotFoundError):
        await admin.set_availability(uow, "nobody", False)


async def scenario_the_workflow_refuses_illegal_moves_and_reopens_within_the_period(uow):
    store = await _policies(uow)
    ticket = await _open(uow, store, _id("c"), category=_id("nothing"))
    assert ticket.status == "new" and ticket.assignee is None
    resolved = await workflow.change_status(uow, store, ticket_id=ticket.ticket_id, target="resolved", actor="a",
                                            now=NOW + timedelta(hours=1), root_cause="carrier")
    assert resolved.resolved_at is not None and resolved.first_response_at is not None
    assert resolved.root_cause == "carrier"
    with pytest.raises(IllegalTransition) as refused:
        await workflow.change_status(uow, store, ticket_id=ticket.ticket_id, target="pending_customer", actor="a",
                                     now=NOW + timedelta(hours=2))
    assert isinstance(refused.value, ConflictError) and refused.value.code == "illegal-transition"
    reopened = await workflow.change_status(uow, store, ticket_id=ticket.ticket_id, target="open", actor="a",
                                            now=NOW + timedelta(days=1))
    assert reopened.reopened_count == 1 and reopened.resolved_at is None
    await workflow.change_status(uow, store, ticket_id=ticket.ticket_id, target="resolved", actor="a",
                                 now=NOW + timedelta(days=2))
    with pytest.raises(IllegalTransition, match="within 14 days"):
        await workflow.change_status(uow, store, ticket_id=ticket.ticket_id, target="open", actor="a",
                                     now=NOW + timedelta(days=20))
    with pytest.raises(NotFoundError):
        await workflow.change_status(uow, store, ticket_id="t-missing", target="open", actor="a", now=NOW)


async def scenario_pending_customer_pauses_the_clock_and_a_reply_resumes_it(uow):
    store = await _policies(uow)
    customer = _id("c")
    ticket = await _open(uow, store, customer, category=_id("nothing"))
    await workflow.change_status(uow, store, ticket_id=ticket.ticket_id, target="open", actor="a", now=NOW)
    paused = await workflow.change_status(uow, store, ticket_id=ticket.ticket_id, target="pending_customer",
                                          actor="a", now=NOW + timedelta(hours=1))
    assert paused.resolution_due_at is None and paused.resolution_left_s == pytest.approx((2880 - 60) * 60)
    await workflow.comment(uow, store, ticket_id=ticket.ticket_id, only_customer=customer, author=customer,
                           staff=False, public=True, body="Here is the photo", article_id=None,
                           now=NOW + timedelta(days=1))
    resumed = await tickets.visible_ticket(uow, ticket.ticket_id)
    assert resumed.status == "open" and resumed.resolution_left_s is None
    assert resumed.resolution_due_at == DEFAULT_POLICY.calendar.add(NOW + timedelta(days=1),
                                                                    timedelta(minutes=2880 - 60))


async def scenario_an_agents_first_public_reply_is_the_first_response(uow):
    store = await _policies(uow)
    customer = _id("c")
    ticket = await _open(uow, store, customer, category=_id("nothing"))
    note = await workflow.comment(uow, store, ticket_id=ticket.ticket_id, only_customer=None, author="a1",
                                  staff=True, public=False, body="check the carrier", article_id=None, now=NOW)
    assert (await tickets.visible_ticket(uow, ticket.ticket_id)).first_response_at is None
    await workflow.comment(uow, store, ticket_id=ticket.ticket_id, only_customer=None, author="a1", staff=True,
                           public=True, body="We are on it", article_id=None, now=NOW + timedelta(minutes=5))
    answered = await tickets.visible_ticket(uow, ticket.ticket_id)
    assert answered.first_response_at == NOW + timedelta(minutes=5) and answered.status == "open"
    seen = await tickets.comments(uow, ticket.ticket_id, only_customer=customer, staff=False)
    assert [c["body"] for c in seen] == ["We are on it"] and note["author_role"] == "staff"
    with pytest.raises(NotFoundError):  # somebody else's ticket: not found, not forbidden
        await tickets.comments(uow, ticket.ticket_id, only_customer=_id("c"), staff=False)


async def scenario_csat_once_after_resolution(uow):
    store = await _policies(uow)
    customer = _id("c")
    ticket = await _open(uow, store, customer, category=_id("nothing"))
    with pytest.raises(NotResolved) as early:
        await tickets.rate(uow, ticket_id=ticket.ticket_id, only_customer=customer, score=5, comment=None,
                           recorded_by=None, now=NOW)
    assert early.value.status == 409 and early.value.code == "not-resolved"
    await workflow.change_status(uow, store, ticket_id=ticket.ticket_id, target="resolved", actor="a", now=NOW)
    rating = await tickets.rate(uow, ticket_id=ticket.ticket_id, only_customer=customer, score=4, comment="ok",
                                recorded_by=None, now=NOW)
    assert rating["score"] == 4 and rating["recorded_by"] is None
    with pytest.raises(AlreadyRated) as again:
        await tickets.rate(uow, ticket_id=ticket.ticket_id, only_customer=None, score=1, comment=None,
                           recorded_by="a1", now=NOW)
    assert again.value.code == "already-rated"


async def scenario_nothing_new_is_recorded_about_an_erased_customer(uow):
    store = await _policies(uow)
    customer = _id("c")
    ticket = await _open(uow, store, customer, category=_id("nothing"))
    await tickets.add_attachment(uow, ticket_id=ticket.ticket_id, only_customer=customer, attachment={
        "filename": "photo.jpg", "content_type": "image/jpeg", "size_bytes": 10, "url": "https://x/p"},
        uploaded_by=customer, now=NOW)
    assert await events.customers_erased(uow, {customer: NOW}) == [customer]
    assert await events.customers_erased(uow, {customer: NOW + timedelta(days=1)}) == [customer]  # a replay
    erased = await tickets.visible_ticket(uow, ticket.ticket_id)
    assert (erased.subject, erased.description, erased.priority) == ("(erased)", "", ticket.priority)
    assert await tickets.attachments(uow, ticket.ticket_id, only_customer=None) == []
    with pytest.raises(CustomerErased) as refused:
        await _open(uow, store, customer)
    assert refused.value.status == 409 and refused.value.code == "customer-erased"
    with pytest.raises(CustomerErased):
        await tickets.update_ticket(uow, ticket_id=ticket.ticket_id, changes={"subject": "x"}, actor="a", now=NOW)
    changed = await tickets.update_ticket(uow, ticket_id=ticket.ticket_id, changes={"priority": "urgent"},
                                          actor="a", now=NOW)
    assert changed.priority == "urgent" and changed.priority_overridden


async def scenario_a_policy_is_saved_over_the_version_read(uow):
    await _policies(uow)
    assert (await admin.current_policy(uow))["version"] == 1
    changed = DEFAULT_POLICY.model_copy(update={"reopen_days": 3})
    assert await admin.save_policy(uow, config=changed, by="sup", if_match='"1"') == 2
    with pytest.raises(StalePolicy) as stale:
        await admin.save_policy(uow, config=changed, by="sup", if_match="1")
    assert stale.value.status == 412 and stale.value.code == "precondition-failed"
    current = await admin.current_policy(uow)
    assert current["version"] == 2 and current["config"].reopen_days == 3


async def scenario_a_key_customer_at_high_risk_gets_one_follow_up(uow):
    store = await _policies(uow)
    vip, regular = _id("c"), _id("c")
    await events.tiers_changed(uow, {vip: "vip", regular: "regular"})
    warning = [events.RiskChange(customer_id=c, old_level="medium", new_level="high", score=0.8, model_version="m",
                                 reasons=[("no order", 0.4)], scored_at=NOW) for c in (vip, regular)]
    opened = await events.churn_risk_changed(uow, store, warning)
    assert [(t.customer_id, t.kind, t.tier) for t in opened] == [(vip, "follow_up", "vip")]
    assert opened[0].first_response_due_at == NOW + timedelta(hours=24)
    assert await events.churn_risk_changed(uow, store, warning[:1]) == []  # the period is taken


async def scenario_tickets_follow_a_merge_and_go_back(uow):
    store = await _policies(uow)
    survivor, duplicate = _id("c"), _id("c")
    ticket = await _open(uow, store, duplicate, category=_id("nothing"))
    merge = events.Merge(survivor=survivor, duplicate=duplicate, at=NOW, event_id=_id("e"))
    await events.customers_merged(uow, [merge, merge])
    assert (await tickets.visible_ticket(uow, ticket.ticket_id)).customer_id == survivor
    later = await _open(uow, store, duplicate, category=_id("nothing"))  # staff, for the merged id
    assert later.customer_id == survivor
    await events.customers_unmerged(uow, [events.Merge(survivor=survivor, duplicate=duplicate, at=NOW)])
    assert (await tickets.visible_ticket(uow, ticket.ticket_id)).customer_id == duplicate
    assert (await tickets.visible_ticket(uow, later.ticket_id)).customer_id == survivor


async def scenario_the_sla_sweep_marks_each_breach_once(uow):
    store = await _policies(uow)
    ticket = await _open(uow, store, _id("c"), category=_id("nothing"))
    late = NOW + timedelta(days=30)
    queued, more = await sla.mark_due(uow, late, 1000)
    assert (queued, more) == (2, False)  # both targets breached; their warnings came too late to send
    assert await sla.mark_due(uow, late, 1000) == (0, False)
    marked = await tickets.visible_ticket(uow, ticket.ticket_id)
    assert marked.fr_breached_at == late and marked.res_breached_at == late and marked.fr_warning_sent_at is None


async def scenario_listing_pages_newest_first(uow):
    store = await _policies(uow)
    customer = _id("c")
    opened = [await _open(uow, store, customer, category=_id("nothing"), at=NOW + timedelta(minutes=i))
              for i in range(3)]
    page, after = await tickets.list_tickets(uow, customer_id=customer, statuses=tickets.statuses_of("active"),
                                             assignee=None, group_id=None, priority=None, before=None, limit=2)
    assert [r.ticket_id for r in page] == [opened[2].ticket_id, opened[1].ticket_id] and after is not None
    rest, end = await tickets.list_tickets(uow, customer_id=customer, statuses=None, assignee=None, group_id=None,
                                           priority=None, before=after, limit=2)
    assert [r.ticket_id for r in rest] == [opened[0].ticket_id] and end is None


SCENARIOS = [value for name, value in sorted(globals().items()) if name.startswith("scenario_")]
