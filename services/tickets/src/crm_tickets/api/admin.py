"""Queues, agents, the policy, the supervisors' report and the SLA sweep on demand."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from crm_shared.auth import CurrentIdentity, Forbidden, Role
from crm_shared.problems import Problem
from crm_shared.uow import unit_of_work
from fastapi import Header, Path, Query, Request

from crm_tickets.api.common import PROBLEM, STAFF, SUPERVISOR, ReadUow, Uow, admin_router, now, policies
from crm_tickets.repository import TicketsRepository
from crm_tickets.schemas import (
    AgentRead,
    AgentUpdate,
    AvailabilityUpdate,
    GroupCreate,
    GroupRead,
    PolicyRead,
    PolicyUpdate,
    ScanRead,
)
from crm_tickets.usecases import admin, reports, sla


@admin_router.get("/groups", response_model=list[GroupRead])
async def list_groups(uow: ReadUow, identity: CurrentIdentity) -> list[GroupRead]:
    """Queues with the categories they handle and how they assign."""
    identity.authorize(STAFF)
    return [GroupRead.model_validate(group) for group in await admin.groups(uow)]


@admin_router.put("/groups/{group_id}", response_model=GroupRead, responses={422: PROBLEM})
async def put_group(body: GroupCreate, uow: Uow, identity: CurrentIdentity,
                    group_id: str = Path(max_length=50)) -> GroupRead:
    """Create or change a queue (supervisors): its skills (categories) and ``round_robin`` or
    ``least_loaded`` assignment."""
    identity.authorize(SUPERVISOR)
    if body.group_id != group_id:
        raise Problem(422, "Unprocessable Content", "group_id in the body must match the path")
    group = await admin.put_group(uow, body.model_dump())
    await uow.commit()
    return GroupRead(**group)


@admin_router.get("/agents", response_model=list[AgentRead])
async def list_agents(uow: ReadUow, identity: CurrentIdentity) -> list[AgentRead]:
    """Agents, their queues, availability and active tickets."""
    identity.authorize(STAFF)
    return [AgentRead.model_validate(agent) for agent in await admin.agents(uow)]


@admin_router.put("/agents/{agent_id}", response_model=AgentRead)
async def put_agent(body: AgentUpdate, uow: Uow, identity: CurrentIdentity,
                    agent_id: str = Path(max_length=100)) -> AgentRead:
    """Register an agent or change their queues (supervisors)."""
    identity.authorize(SUPERVISOR)
    agent = await admin.put_agent(uow, agent_id, body.model_dump())
    await uow.commit()
    return AgentRead(**agent)


@admin_router.put("/agents/{agent_id}/availability", response_model=AvailabilityUpdate, responses={404: PROBLEM})
async def set_availability(body: AvailabilityUpdate, uow: Uow, identity: CurrentIdentity,
                           agent_id: str = Path(max_length=100)) -> AvailabilityUpdate:
    """An agent goes available or away (themselves, or a supervisor for them); only available agents
    get new tickets."""
    identity.authorize(STAFF)
    if identity.role is Role.AGENT and identity.subject != agent_id:
        raise Forbidden("agents set only their own availability")
    await admin.set_availability(uow, agent_id, body.available)
    await uow.commit()
    return body


@admin_router.get("/policy", response_model=PolicyRead)
async def get_policy(uow: ReadUow, identity: CurrentIdentity) -> PolicyRead:
    """The business-hours calendar, SLA targets, warning point, reopen period and priority rules."""
    identity.authorize(STAFF)
    return PolicyRead(**await admin.current_policy(uow))


@admin_router.put("/policy", response_model=PolicyRead, responses={412: PROBLEM, 422: PROBLEM})
async def put_policy(body: PolicyUpdate, request: Request, uow: Uow, identity: CurrentIdentity,
                     if_match: Annotated[str | None, Header(alias="If-Match")] = None) -> PolicyRead:
    """Save a new policy version (supervisors). It applies to tickets opened (and clocks resumed)
    from now on; due times already computed stay. ``If-Match: <version>`` refuses a lost update."""
    identity.authorize(SUPERVISOR)
    await admin.save_policy(uow, config=body.config, by=identity.subject, if_match=if_match)
    await uow.commit()
    policies(request).forget()
    return PolicyRead(**await admin.current_policy(uow))


@admin_router.get("/reports", responses={422: PROBLEM})
async def ticket_report(uow: ReadUow, identity: CurrentIdentity,
                        since: Annotated[datetime, Query()], until: Annotated[datetime, Query()]) -> dict[str, Any]:
    """Tickets opened in [since, until) (supervisors): complaints by category and root cause, SLA met %
    for first response and resolution, average first-response and resolution times, CSAT by agent and
    group, reopen rate."""
    identity.authorize(SUPERVISOR)
    if since.tzinfo is None or until.tzinfo is None or until <= since:
        raise Problem(422, "Unprocessable Content", "since and until must carry a timezone, until after since")
    return await reports.ticket_report(uow, since, until)


@admin_router.post("/sla-scan", response_model=ScanRead, responses={422: PROBLEM})
async def run_sla_scan(request: Request, identity: CurrentIdentity,
                       as_of: Annotated[datetime | None, Query(description="Only where JOBS_ACCEPT_AS_OF is set")]
                       = None) -> ScanRead:
    """Run the SLA scheduler once now (supervisors): warnings and breaches due are marked and announced,
    each exactly once."""
    identity.authorize(SUPERVISOR)
    settings = request.app.state.resources.settings
    if as_of is not None and not settings.jobs_accept_as_of:
        raise Problem(422, "Unprocessable Content", "as_of is accepted only where JOBS_ACCEPT_AS_OF is set")
    moment = as_of or now()
    engine = request.app.state.runtime.engine
    total = await sla.sweep(lambda: unit_of_work(engine, TicketsRepository), as_of=moment,
                            batch=settings.sla_scan_batch)
    return ScanRead(as_of=moment, events=total)
