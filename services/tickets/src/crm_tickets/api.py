"""HTTP routes of the tickets service (thin: the workflow and SLA rules live in domain/ and repository.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from crm_shared import idempotency
from crm_shared.auth import ALL_ROLES, CurrentIdentity, Forbidden, Identity, Role
from crm_shared.bus import add_to_outbox
from crm_shared.db import DbConnection, DbReadConnection
from crm_shared.idempotency import IdempotencyKey
from crm_shared.merges import survivors_of
from crm_shared.problems import PROBLEM_BASE, PROBLEM_JSON, NotFound, Problem
from crm_shared.tracing import current_traceparent
from fastapi import APIRouter, Header, Path, Query, Request
from sqlalchemy import text

from crm_tickets.domain.events import csat_submitted
from crm_tickets.domain.policy import ACTIVE, IllegalTransition, TicketsPolicy
from crm_tickets.erasure import refuse_if_erased
from crm_tickets.reports import ticket_report
from crm_tickets.repository import (
    TICKET_COLUMNS,
    PolicyStore,
    add_comment,
    assign,
    load_ticket,
    open_ticket,
    record_history,
    transition,
)
from crm_tickets.schemas import (
    AgentRead,
    AgentUpdate,
    ArticleCreate,
    ArticleRead,
    AssignmentCreate,
    AttachmentCreate,
    AttachmentRead,
    AvailabilityUpdate,
    CommentCreate,
    CommentRead,
    CsatCreate,
    CsatRead,
    GroupCreate,
    GroupRead,
    HistoryRead,
    PolicyRead,
    PolicyUpdate,
    ScanRead,
    SlaClock,
    TicketCreate,
    TicketPage,
    TicketRead,
    TicketUpdate,
    TransitionCreate,
)

router = APIRouter(prefix="/v1/tickets", tags=["tickets"])
kb_router = APIRouter(prefix="/v1/kb", tags=["knowledge base"])

STAFF = frozenset({Role.AGENT, Role.SUPERVISOR})
SUPERVISOR = frozenset({Role.SUPERVISOR})
BIGINT_MAX = 2**63 - 1
TicketIdPath = Path(min_length=1, max_length=100)
_PROBLEM = {"content": {PROBLEM_JSON: {}}}


def _policy_store(request: Request) -> PolicyStore:
    return request.app.state.resources.policy


def _now() -> datetime:
    return datetime.now(UTC)


def _is_staff(identity: Identity) -> bool:
    return identity.role in STAFF


def _clock(due: datetime | None, warn_sent: datetime | None, breached: datetime | None, done_at: datetime | None,
           paused_left: float | None, stopped: bool) -> SlaClock:
    if done_at is not None:
        state = "breached" if breached or (due is not None and done_at > due) else "met"
    elif breached is not None:
        state = "breached"
    elif paused_left is not None:
        state = "paused"
    elif stopped:
        state = "stopped"
    else:
        state = "running"
    return SlaClock(due_at=due, state=state, warning_sent=warn_sent is not None, breached=breached is not None,
                    left_minutes=round(paused_left / 60, 1) if paused_left is not None else None)


def ticket_read(row: Any, identity: Identity | None = None) -> TicketRead:
    """The ticket as ``identity`` may see it: a customer's own ticket leaves out the churn level the
    priority was set from (the shop's view of the customer, not theirs)."""
    items = row.items if isinstance(row.items, list) else orjson.loads(row.items)
    customer_view = identity is not None and identity.role is Role.CUSTOMER
    return TicketRead(
        ticket_id=row.ticket_id, customer_id=row.customer_id, kind=row.kind, channel=row.channel, subject=row.subject,
        description=row.description, category=row.category, subcategory=row.subcategory, order_id=row.order_id,
        items=items, priority=row.priority, priority_overridden=row.priority_overridden, status=row.status,
        group_id=row.group_id, assignee=row.assignee, tier=row.tier,
        churn_level=None if customer_view else row.churn_level,
        root_cause=row.root_cause, created_by=row.created_by, created_at=row.created_at,
        first_response_at=row.first_response_at, resolved_at=row.resolved_at, closed_at=row.closed_at,
        reopened_count=row.reopened_count,
        sla={"first_response": _clock(row.first_response_due_at, row.fr_warning_sent_at, row.fr_breached_at,
                                      row.first_response_at, None, row.status not in ACTIVE),
             "resolution": _clock(row.resolution_due_at, row.res_warning_sent_at, row.res_breached_at,
                                  row.resolved_at, row.resolution_left_s, row.status not in ACTIVE)})


async def _ticket_for(db, identity: Identity, ticket_id: str, *, lock: bool = False) -> Any:
    """The ticket, if this caller may see it: staff any, a customer only their own (else 404, not 403:
    a customer learns nothing about other people's ticket ids)."""
    row = await load_ticket(db, ticket_id, lock=lock)
    if row is None or (identity.role is Role.CUSTOMER and row.customer_id != identity.customer_id):
        raise NotFound("ticket", ticket_id)
    if identity.role is Role.SERVICE:
        identity.authorize(ALL_ROLES, scope="tickets:read")
    return row


# -- tickets ---------------------------------------------------------------------------------------

@router.post("", status_code=201, response_model=TicketRead,
             responses={409: {**_PROBLEM, "description": "Same key in flight"}, 422: _PROBLEM})
async def create_ticket(body: TicketCreate, request: Request, db: DbConnection, identity: CurrentIdentity,
                        key: IdempotencyKey) -> TicketRead:
    """Open a ticket (customers for themselves from the web or app; agents from any channel;
    integrations with ``tickets:write``). The priority comes from the category, the customer's tier
    and churn risk unless an agent sets it; the SLA clocks start in business time; the ticket is
    assigned within the queue that handles its category. Requires ``Idempotency-Key``."""
    identity.authorize(ALL_ROLES, scope="tickets:write", customer_id=body.customer_id)
    if body.priority is not None and not _is_staff(identity):
        raise Forbidden("only agents may set a priority")
    replay = await idempotency.begin(db, request, identity, key)
    if replay is not None:
        return replay
    await refuse_if_erased(db, body.customer_id)
    _, policy = await _policy_store(request).current(db)
    fields = body.model_dump(exclude_none=True)
    fields["items"] = [item.model_dump() for item in body.items]
    if identity.role is not Role.CUSTOMER:  # staff opening one for a merged id: the surviving profile's
        fields["customer_id"] = (await survivors_of(db, [body.customer_id])).get(body.customer_id, body.customer_id)
    row = await open_ticket(db, policy, fields=fields, actor=identity.subject, now=_now(),
                            traceparent=current_traceparent.get())
    answer = ticket_read(row, identity)
    await idempotency.finish(db, request, identity, key, 201, answer)
    await db.commit()
    return answer


@router.get("", response_model=TicketPage, responses={422: _PROBLEM})
async def list_tickets(db: DbReadConnection, identity: CurrentIdentity,
                       customer_id: Annotated[str | None, Query(max_length=100)] = None,
                       status: Annotated[str | None, Query(max_length=100, description=(
                           "Comma-separated statuses; 'active' = new, open and pending_customer"))] = None,
                       assignee: Annotated[str | None, Query(max_length=100)] = None,
                       group_id: Annotated[str | None, Query(max_length=100)] = None,
                       priority: Annotated[str | None, Query(max_length=20)] = None,
                       cursor: Annotated[str | None, Query(max_length=200)] = None,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50) -> TicketPage:
    """Tickets, newest first, filtered; cursor-paginated. Customers see only their own (pass
    their ``customer_id``); agents and supervisors see all; integrations need ``tickets:read``."""
    identity.authorize(ALL_ROLES, scope="tickets:read")
    if identity.role is Role.CUSTOMER:
        if customer_id != identity.customer_id:
            raise Forbidden("a customer may only list their own tickets")
    statuses = None
    if status:
        statuses = [s for part in status.split(",") for s in (ACTIVE if part == "active" else (part,))]
    before_at, before_id = datetime.max.replace(tzinfo=UTC), ""
    if cursor:
        try:
            at, before_id = cursor.split("|", 1)
            before_at = datetime.fromisoformat(at)
        except ValueError:
            raise Problem(422, "Unprocessable Content", "cursor is not one this API gave out") from None
    rows = list(await db.execute(text(f"""
        SELECT {TICKET_COLUMNS} FROM tickets
        WHERE (CAST(:customer_id AS text) IS NULL OR customer_id = :customer_id)
          AND (CAST(:statuses AS text[]) IS NULL OR status = ANY(CAST(:statuses AS text[])))
          AND (CAST(:assignee AS text) IS NULL OR assignee = :assignee)
          AND (CAST(:group_id AS text) IS NULL OR group_id = :group_id)
          AND (CAST(:priority AS text) IS NULL OR priority = :priority)
          AND (created_at, ticket_id) < (:before_at, :before_id)
        ORDER BY created_at DESC, ticket_id DESC LIMIT :limit"""), {
        "customer_id": customer_id, "statuses": statuses, "assignee": assignee, "group_id": group_id,
        "priority": priority, "before_at": before_at, "before_id": before_id or "\uffff", "limit": limit + 1}))
    items = [ticket_read(row, identity) for row in rows[:limit]]
    next_cursor = f"{items[-1].created_at.isoformat()}|{items[-1].ticket_id}" if len(rows) > limit else None
    return TicketPage(items=items, next_cursor=next_cursor)


@router.get("/{ticket_id}", response_model=TicketRead, responses={404: _PROBLEM})
async def get_ticket(db: DbReadConnection, identity: CurrentIdentity, ticket_id: str = TicketIdPath) -> TicketRead:
    """One ticket with its SLA state (due times, paused, met or breached)."""
    return ticket_read(await _ticket_for(db, identity, ticket_id), identity)


@router.patch("/{ticket_id}", response_model=TicketRead,
              responses={404: _PROBLEM, 409: {**_PROBLEM, "description": "A new subject for an erased customer"}})
async def update_ticket(body: TicketUpdate, db: DbConnection, identity: CurrentIdentity,
                        ticket_id: str = TicketIdPath) -> TicketRead:
    """Correct category, sub-category, subject or root cause, or override the priority (agents)."""
    identity.authorize(STAFF)
    ticket = await _ticket_for(db, identity, ticket_id, lock=True)
    changes = body.model_dump(exclude_none=True)
    if not changes:
        return ticket_read(ticket)
    if "subject" in changes:
        await refuse_if_erased(db, ticket.customer_id)
    if "priority" in changes:
        changes["priority_overridden"] = True
    assignments = ", ".join(f"{column} = :{column}" for column in changes)
    row = (await db.execute(text(f"UPDATE tickets SET {assignments}, updated_at = now() WHERE ticket_id = :tid "
                                 f"RETURNING {TICKET_COLUMNS}"), {**changes, "tid": ticket_id})).one()
    await record_history(db, ticket_id, identity.subject, "updated",
                         {k: [getattr(ticket, k), v] for k, v in changes.items()}, _now())
    await db.commit()
    return ticket_read(row)


@router.post("/{ticket_id}/transitions", response_model=TicketRead,
             responses={404: _PROBLEM, 409: {**_PROBLEM, "description": "Not allowed from the current status"}})
async def change_status(body: TransitionCreate, request: Request, db: DbConnection, identity: CurrentIdentity,
                        ticket_id: str = TicketIdPath) -> TicketRead:
    """Move a ticket along new → open → pending customer → resolved → closed, or reopen it within
    the policy's ``reopen_days`` (agents). An illegal move is a 409 problem. Pending customer pauses
    the resolution clock; leaving it resumes the clock with the business time that was left."""
    identity.authorize(STAFF)
    _, policy = await _policy_store(request).current(db)
    ticket = await _ticket_for(db, identity, ticket_id, lock=True)
    try:
        row = await transition(db, policy, ticket, body.status, actor=identity.subject, now=_now(),
                               root_cause=body.root_cause, traceparent=current_traceparent.get())
    except IllegalTransition as illegal:
        raise Problem(409, "Conflict", str(illegal), type_=PROBLEM_BASE + "illegal-transition") from None
    await db.commit()
    return ticket_read(row)


@router.post("/{ticket_id}/assignment", response_model=TicketRead, responses={404: _PROBLEM})
async def reassign(body: AssignmentCreate, db: DbConnection, identity: CurrentIdentity,
                   ticket_id: str = TicketIdPath) -> TicketRead:
    """Assign to a named agent, or automatically within the ticket's (or another) group (agents)."""
    identity.authorize(STAFF)
    ticket = await _ticket_for(db, identity, ticket_id, lock=True)
    if body.agent_id is not None and (await db.execute(text("SELECT 1 FROM agents WHERE agent_id = :a"),
                                                       {"a": body.agent_id})).first() is None:
        raise NotFound("agent", body.agent_id)
    row = await assign(db, ticket, agent=body.agent_id, group_id=body.group_id, actor=identity.subject, now=_now(),
                       traceparent=current_traceparent.get())
    await db.commit()
    return ticket_read(row)


@router.get("/{ticket_id}/history", response_model=list[HistoryRead], responses={404: _PROBLEM})
async def ticket_history(db: DbReadConnection, identity: CurrentIdentity,
                         ticket_id: str = TicketIdPath) -> list[HistoryRead]:
    """Who changed what and when (agents and supervisors)."""
    identity.authorize(STAFF)
    await _ticket_for(db, identity, ticket_id)
    rows = await db.execute(text("SELECT actor, action, changes, at FROM ticket_history WHERE ticket_id = :t "
                                 "ORDER BY id"), {"t": ticket_id})
    return [HistoryRead(actor=r.actor, action=r.action, at=r.at,
                        changes=r.changes if isinstance(r.changes, dict) else orjson.loads(r.changes)) for r in rows]


# -- comments and attachments -------------------------------------------------------------------------

@router.post("/{ticket_id}/comments", status_code=201, response_model=CommentRead,
             responses={404: _PROBLEM, 409: _PROBLEM, 422: _PROBLEM})
async def comment(body: CommentCreate, request: Request, db: DbConnection, identity: CurrentIdentity,
                  key: IdempotencyKey, ticket_id: str = TicketIdPath) -> CommentRead:
    """A public reply or an internal note (agents), or the customer's reply. An agent's first public
    reply stops the first-response clock; a customer's reply to a ticket pending on them reopens it.
    Requires ``Idempotency-Key``."""
    identity.authorize(frozenset({Role.CUSTOMER, *STAFF}))
    if not _is_staff(identity) and not body.public:
        raise Forbidden("customers cannot write internal notes")
    replay = await idempotency.begin(db, request, identity, key)
    if replay is not None:
        return replay
    _, policy = await _policy_store(request).current(db)
    ticket = await _ticket_for(db, identity, ticket_id, lock=True)
    await refuse_if_erased(db, ticket.customer_id)
    saved, _ = await add_comment(db, policy, ticket, author=identity.subject, staff=_is_staff(identity),
                                 public=body.public, body=body.body, article_id=body.article_id, now=_now(),
                                 traceparent=current_traceparent.get())
    answer = CommentRead(**saved)
    await idempotency.finish(db, request, identity, key, 201, answer)
    await db.commit()
    return answer


@router.get("/{ticket_id}/comments", response_model=list[CommentRead], responses={404: _PROBLEM})
async def list_comments(db: DbReadConnection, identity: CurrentIdentity,
                        ticket_id: str = TicketIdPath) -> list[CommentRead]:
    """The conversation, oldest first; customers never see internal notes."""
    await _ticket_for(db, identity, ticket_id)
    rows = await db.execute(text("""SELECT comment_id, ticket_id, author, author_role, public, body, article_id,
                                           created_at FROM ticket_comments
                                    WHERE ticket_id = :t AND (public OR :staff) ORDER BY created_at, comment_id"""),
                            {"t": ticket_id, "staff": _is_staff(identity)})
    return [CommentRead.model_validate(dict(r._mapping)) for r in rows]


@router.post("/{ticket_id}/attachments", status_code=201, response_model=AttachmentRead,
             responses={404: _PROBLEM, 409: {**_PROBLEM, "description": "The customer was erased"}})
async def add_attachment(body: AttachmentCreate, db: DbConnection, identity: CurrentIdentity,
                         ticket_id: str = TicketIdPath) -> AttachmentRead:
    """Record an attachment's metadata (the file itself lives in the shop's object store)."""
    identity.authorize(frozenset({Role.CUSTOMER, *STAFF}))
    ticket = await _ticket_for(db, identity, ticket_id)
    await refuse_if_erased(db, ticket.customer_id)
    record = {**body.model_dump(), "attachment_id": f"a-{uuid.uuid4().hex[:16]}", "ticket_id": ticket_id,
              "uploaded_by": identity.subject, "created_at": _now()}
    await db.execute(text("""INSERT INTO ticket_attachments (attachment_id, ticket_id, filename, content_type,
                                                             size_bytes, url, uploaded_by, created_at)
                             VALUES (:attachment_id, :ticket_id, :filename, :content_type, :size_bytes, :url,
                                     :uploaded_by, :created_at)"""), record)
    await record_history(db, ticket_id, identity.subject, "attachment", {"filename": body.filename},
                         record["created_at"])
    await db.commit()
    return AttachmentRead(**record)


@router.get("/{ticket_id}/attachments", response_model=list[AttachmentRead], responses={404: _PROBLEM})
async def list_attachments(db: DbReadConnection, identity: CurrentIdentity,
                           ticket_id: str = TicketIdPath) -> list[AttachmentRead]:
    await _ticket_for(db, identity, ticket_id)
    rows = await db.execute(text("SELECT * FROM ticket_attachments WHERE ticket_id = :t ORDER BY created_at"),
                            {"t": ticket_id})
    return [AttachmentRead.model_validate(dict(r._mapping)) for r in rows]


# -- satisfaction -------------------------------------------------------------------------------------

@router.post("/{ticket_id}/csat", status_code=201, response_model=CsatRead,
             responses={404: _PROBLEM, 409: {**_PROBLEM, "description": "Not resolved yet, or already rated"}})
async def rate(body: CsatCreate, db: DbConnection, identity: CurrentIdentity,
               ticket_id: str = TicketIdPath) -> CsatRead:
    """The customer rates a resolved (or closed) ticket, 1–5 with a comment, once. The agent and
    group at rating time are kept with the score.

    An agent or supervisor may record the answer a customer gave on the phone; the rating is then
    marked as recorded by them (``recorded_by``, from their token), so reports can tell the two apart.
    """
    identity.authorize(frozenset({Role.CUSTOMER, *STAFF}))
    ticket = await _ticket_for(db, identity, ticket_id, lock=True)
    await refuse_if_erased(db, ticket.customer_id)
    if ticket.status not in ("resolved", "closed"):
        raise Problem(409, "Conflict", "a ticket can be rated once it is resolved", type_=PROBLEM_BASE + "not-resolved")
    recorded_by = identity.subject if _is_staff(identity) else None
    now = _now()
    saved = (await db.execute(text("""
        INSERT INTO csat (ticket_id, customer_id, score, comment, agent, group_id, submitted_at, recorded_by)
        VALUES (:t, :c, :score, :comment, :agent, :group_id, :at, :recorded_by) ON CONFLICT (ticket_id) DO NOTHING
        RETURNING ticket_id"""), {"t": ticket_id, "c": ticket.customer_id, "score": body.score,
                                  "comment": body.comment, "agent": ticket.assignee, "group_id": ticket.group_id,
                                  "at": now, "recorded_by": recorded_by})).first()
    if saved is None:
        raise Problem(409, "Conflict", "this ticket was already rated", type_=PROBLEM_BASE + "already-rated")
    await add_to_outbox(db, [csat_submitted(ticket.customer_id, ticket_id, body.score, ticket.assignee,
                                            ticket.group_id, now, current_traceparent.get(),
                                            recorded_by=recorded_by)])
    await db.commit()
    return CsatRead(ticket_id=ticket_id, score=body.score, comment=body.comment, agent=ticket.assignee,
                    group_id=ticket.group_id, submitted_at=now, recorded_by=recorded_by)


# -- the policy and the scheduler -----------------------------------------------------------------------

async def _policy_read(db) -> PolicyRead:
    row = (await db.execute(text("SELECT version, config, created_by, created_at FROM policy "
                                 "ORDER BY version DESC LIMIT 1"))).one()
    config = row.config if isinstance(row.config, dict) else orjson.loads(row.config)
    return PolicyRead(version=row.version, created_by=row.created_by, created_at=row.created_at,
                      config=TicketsPolicy.model_validate(config))


admin_router = APIRouter(prefix="/v1/ticketing", tags=["tickets: queues, policy, reports"])


@admin_router.get("/groups", response_model=list[GroupRead])
async def list_groups(db: DbReadConnection, identity: CurrentIdentity) -> list[GroupRead]:
    """Queues with the categories they handle and how they assign."""
    identity.authorize(STAFF)
    rows = await db.execute(text("SELECT group_id, name, skills, strategy, last_agent FROM agent_groups "
                                 "ORDER BY group_id"))
    return [GroupRead.model_validate(dict(r._mapping)) for r in rows]


@admin_router.put("/groups/{group_id}", response_model=GroupRead, responses={422: _PROBLEM})
async def put_group(body: GroupCreate, db: DbConnection, identity: CurrentIdentity,
                    group_id: str = Path(max_length=50)) -> GroupRead:
    """Create or change a queue (supervisors): its skills (categories) and ``round_robin`` or
    ``least_loaded`` assignment."""
    identity.authorize(SUPERVISOR)
    if body.group_id != group_id:
        raise Problem(422, "Unprocessable Content", "group_id in the body must match the path")
    await db.execute(text("""
        INSERT INTO agent_groups (group_id, name, skills, strategy) VALUES (:group_id, :name, :skills, :strategy)
        ON CONFLICT (group_id) DO UPDATE SET name = excluded.name, skills = excluded.skills,
                                             strategy = excluded.strategy"""), body.model_dump())
    await db.commit()
    return GroupRead(**body.model_dump())


@admin_router.get("/agents", response_model=list[AgentRead])
async def list_agents(db: DbReadConnection, identity: CurrentIdentity) -> list[AgentRead]:
    """Agents, their queues, availability and active tickets."""
    identity.authorize(STAFF)
    rows = await db.execute(text("""
        SELECT agent_id, name, groups, available, active_tickets AS open_tickets FROM agents ORDER BY agent_id"""))
    return [AgentRead.model_validate(dict(r._mapping)) for r in rows]


@admin_router.put("/agents/{agent_id}", response_model=AgentRead)
async def put_agent(body: AgentUpdate, db: DbConnection, identity: CurrentIdentity,
                    agent_id: str = Path(max_length=100)) -> AgentRead:
    """Register an agent or change their queues (supervisors)."""
    identity.authorize(SUPERVISOR)
    await db.execute(text("""
        INSERT INTO agents (agent_id, name, groups, available) VALUES (:agent_id, :name, :groups, :available)
        ON CONFLICT (agent_id) DO UPDATE SET name = excluded.name, groups = excluded.groups,
                                             available = excluded.available"""),
                     {**body.model_dump(), "agent_id": agent_id})
    await db.commit()
    return AgentRead(agent_id=agent_id, **body.model_dump())


@admin_router.put("/agents/{agent_id}/availability", response_model=AvailabilityUpdate, responses={404: _PROBLEM})
async def set_availability(body: AvailabilityUpdate, db: DbConnection, identity: CurrentIdentity,
                           agent_id: str = Path(max_length=100)) -> AvailabilityUpdate:
    """An agent goes available or away (themselves, or a supervisor for them); only available agents
    get new tickets."""
    identity.authorize(STAFF)
    if identity.role is Role.AGENT and identity.subject != agent_id:
        raise Forbidden("agents set only their own availability")
    updated = (await db.execute(text("UPDATE agents SET available = :v WHERE agent_id = :a RETURNING agent_id"),
                                {"v": body.available, "a": agent_id})).first()
    if updated is None:
        raise NotFound("agent", agent_id)
    await db.commit()
    return body


@admin_router.get("/policy", response_model=PolicyRead)
async def get_policy(db: DbReadConnection, identity: CurrentIdentity) -> PolicyRead:
    """The business-hours calendar, SLA targets, warning point, reopen period and priority rules."""
    identity.authorize(STAFF)
    return await _policy_read(db)


@admin_router.put("/policy", response_model=PolicyRead, responses={412: _PROBLEM, 422: _PROBLEM})
async def put_policy(body: PolicyUpdate, request: Request, db: DbConnection, identity: CurrentIdentity,
                     if_match: Annotated[str | None, Header(alias="If-Match")] = None) -> PolicyRead:
    """Save a new policy version (supervisors). It applies to tickets opened (and clocks resumed)
    from now on; due times already computed stay. ``If-Match: <version>`` refuses a lost update."""
    identity.authorize(SUPERVISOR)
    await db.execute(text("LOCK TABLE policy IN EXCLUSIVE MODE"))
    latest = (await db.execute(text("SELECT max(version) FROM policy"))).scalar()
    if if_match is not None and if_match.strip('"W/') != str(latest):
        raise Problem(412, "Precondition Failed", f"the policy is at version {latest}, not {if_match}")
    await db.execute(text("INSERT INTO policy (version, config, created_by) VALUES (:v, CAST(:c AS jsonb), :by)"),
                     {"v": latest + 1, "c": body.config.model_dump_json(), "by": identity.subject})
    await db.commit()
    _policy_store(request).forget()
    return await _policy_read(db)


@admin_router.get("/reports", responses={422: _PROBLEM})
async def reports(db: DbReadConnection, identity: CurrentIdentity,
                  since: Annotated[datetime, Query()], until: Annotated[datetime, Query()]) -> dict[str, Any]:
    """Tickets opened in [since, until) (supervisors): complaints by category and root cause, SLA met %
    for first response and resolution, average first-response and resolution times, CSAT by agent and
    group, reopen rate."""
    identity.authorize(SUPERVISOR)
    if since.tzinfo is None or until.tzinfo is None or until <= since:
        raise Problem(422, "Unprocessable Content", "since and until must carry a timezone, until after since")
    return await ticket_report(db, since, until)


@admin_router.post("/sla-scan", response_model=ScanRead, responses={422: _PROBLEM})
async def run_sla_scan(request: Request, identity: CurrentIdentity,
                       as_of: Annotated[datetime | None, Query(description="Only where JOBS_ACCEPT_AS_OF is set")]
                       = None) -> ScanRead:
    """Run the SLA scheduler once now (supervisors): warnings and breaches due are marked and announced,
    each exactly once."""
    identity.authorize(SUPERVISOR)
    if as_of is not None and not request.app.state.resources.settings.jobs_accept_as_of:
        raise Problem(422, "Unprocessable Content", "as_of is accepted only where JOBS_ACCEPT_AS_OF is set")
    moment = as_of or _now()
    total = await request.app.state.resources.scheduler.scan(moment)
    return ScanRead(as_of=moment, events=total)


# -- the knowledge base ----------------------------------------------------------------------------------

@kb_router.get("/articles", response_model=list[ArticleRead])
async def search_articles(db: DbReadConnection, identity: CurrentIdentity,
                          q: Annotated[str | None, Query(max_length=200)] = None,
                          category: Annotated[str | None, Query(max_length=200)] = None,
                          limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[ArticleRead]:
    """Standard answers (agents), by full-text search (PostgreSQL, best match first) and category."""
    identity.authorize(STAFF)
    rows = await db.execute(text("""
        SELECT article_id, title, body, category, updated_by, updated_at,
               CASE WHEN CAST(:q AS text) IS NULL THEN NULL
                    ELSE ts_rank(search, websearch_to_tsquery('simple', :q)) END AS rank
        FROM articles
        WHERE (CAST(:q AS text) IS NULL OR search @@ websearch_to_tsquery('simple', :q))
          AND (CAST(:category AS text) IS NULL OR category = :category)
        ORDER BY rank DESC NULLS LAST, updated_at DESC LIMIT :limit"""), {"q": q, "category": category, "limit": limit})
    return [ArticleRead.model_validate(dict(r._mapping)) for r in rows]


@kb_router.post("/articles", status_code=201, response_model=ArticleRead)
async def create_article(body: ArticleCreate, db: DbConnection, identity: CurrentIdentity) -> ArticleRead:
    """Add a standard answer (supervisors)."""
    identity.authorize(SUPERVISOR)
    record = {**body.model_dump(), "article_id": f"kb-{uuid.uuid4().hex[:12]}", "updated_by": identity.subject,
              "updated_at": _now()}
    await db.execute(text("""INSERT INTO articles (article_id, title, body, category, updated_by, updated_at)
                             VALUES (:article_id, :title, :body, :category, :updated_by, :updated_at)"""), record)
    await db.commit()
    return ArticleRead(**record)


@kb_router.get("/articles/{article_id}", response_model=ArticleRead, responses={404: _PROBLEM})
async def get_article(db: DbReadConnection, identity: CurrentIdentity,
                      article_id: str = Path(max_length=100)) -> ArticleRead:
    identity.authorize(STAFF)
    row = (await db.execute(text("SELECT article_id, title, body, category, updated_by, updated_at FROM articles "
                                 "WHERE article_id = :a"), {"a": article_id})).first()
    if row is None:
        raise NotFound("article", article_id)
    return ArticleRead.model_validate(dict(row._mapping))


@kb_router.put("/articles/{article_id}", response_model=ArticleRead, responses={404: _PROBLEM})
async def update_article(body: ArticleCreate, db: DbConnection, identity: CurrentIdentity,
                         article_id: str = Path(max_length=100)) -> ArticleRead:
    """Change a standard answer (supervisors)."""
    identity.authorize(SUPERVISOR)
    record = {**body.model_dump(), "article_id": article_id, "updated_by": identity.subject, "updated_at": _now()}
    updated = (await db.execute(text("""UPDATE articles SET title = :title, body = :body, category = :category,
                                            updated_by = :updated_by, updated_at = :updated_at
                                        WHERE article_id = :article_id RETURNING article_id"""), record)).first()
    if updated is None:
        raise NotFound("article", article_id)
    await db.commit()
    return ArticleRead(**record)


