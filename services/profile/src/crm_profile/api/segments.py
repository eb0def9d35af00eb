"""Routes of segments: the RFM segments and the custom ones staff define, their members, a refresh."""

from __future__ import annotations

from crm_shared import idempotency
from crm_shared.auth import CurrentIdentity
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import PROBLEM_BASE, Problem
from fastapi import Path, Query, Request, Response
from pydantic import TypeAdapter, ValidationError

from crm_profile.api.common import PROBLEM, STAFF, SUPERVISOR, ReadUow, Role, Uow, resources, segments_router
from crm_profile.api.views import rfm_segment_read, segment_read
from crm_profile.domain.events import format_amount
from crm_profile.domain.segments import RFM_SEGMENTS, CompiledRule, Rule
from crm_profile.jobs import refresh_segments_now
from crm_profile.schemas import (
    RefreshRead,
    RfmGridCell,
    RfmGridRead,
    SegmentCreate,
    SegmentMember,
    SegmentMemberPage,
    SegmentRead,
    SegmentUpdate,
)
from crm_profile.usecases import segment_definitions as definitions

# Segment definitions, their sizes and the RFM grid are aggregates (counts and sums, no customer
# id, no PII): marketers plan audiences with them. The members of a segment list customers: staff only.
AGGREGATE_READERS = STAFF | {Role.MARKETER}


def _rule(raw: dict) -> Rule:
    try:
        rule = TypeAdapter(Rule).validate_python(raw)
        CompiledRule(rule)  # type checks between fields and values
    except (ValidationError, ValueError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise Problem(422, "Invalid request", f"the rule is not valid: {detail}",
                      type_=PROBLEM_BASE + "invalid-rule") from None
    return rule


@segments_router.get("", response_model=list[SegmentRead])
async def list_segments(uow: ReadUow, identity: CurrentIdentity) -> list[SegmentRead]:
    """The RFM segments (``rfm:<name>``) and the custom segments, with their member counts."""
    identity.authorize(AGGREGATE_READERS)
    rows, sizes = await definitions.list_segments(uow)
    return [rfm_segment_read(f"rfm:{name}", sizes.get(f"rfm:{name}", 0)) for name in RFM_SEGMENTS] + \
        [segment_read(row, sizes.get(row["segment_id"], 0)) for row in rows]


# Declared before /{segment_id}, which would otherwise take "rfm-grid" for a segment's id.
@segments_router.get("/rfm-grid", response_model=RfmGridRead)
async def rfm_grid(request: Request, uow: ReadUow, identity: CurrentIdentity) -> RfmGridRead:
    """Customers and their net spend per recency × frequency score (the 25 cells of a 5×5 grid,
    empty ones as zeros), as the last refresh scored them; erased customers are left out."""
    identity.authorize(AGGREGATE_READERS)
    currency = resources(request).rfm_currency
    grid = await definitions.rfm_grid(uow, currency)
    return RfmGridRead(currency=currency, scored_at=grid.scored_at, customers=grid.customers,
                       value=format_amount(grid.value),
                       cells=[RfmGridCell(r=c.r, f=c.f, customers=c.customers, value=format_amount(c.value))
                              for c in grid.cells])


@segments_router.post("", status_code=201, response_model=SegmentRead,
                      responses={409: {**PROBLEM, "description": "The id is taken"},
                                 422: {**PROBLEM, "description": "Invalid rule"}})
async def create_segment(body: SegmentCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                         key: IdempotencyKey) -> SegmentRead:
    """Define a custom segment (supervisors). Its members are computed at once and kept current
    as events arrive; each change emits ``crm.profile.segment.entered`` / ``exited``."""
    identity.authorize(SUPERVISOR)
    _rule(body.rule)
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    row, members = await definitions.create_segment(uow, segment_id=body.segment_id, name=body.name,
                                                    description=body.description, rule=body.rule,
                                                    created_by=identity.subject,
                                                    currency=resources(request).rfm_currency)
    answer = segment_read(row, members)
    await idempotency.finish(uow, request, identity, key, 201, answer)
    await uow.commit()
    return answer


@segments_router.post("/refresh", response_model=RefreshRead)
async def refresh_now(request: Request, identity: CurrentIdentity) -> RefreshRead:
    """Recompute RFM scores and every custom segment for the whole base now (supervisors); the
    same job runs every ``SEGMENT_REFRESH_INTERVAL_S``. 409 while another refresh runs."""
    identity.authorize(SUPERVISOR)
    result = await refresh_segments_now(request.app.state.runtime, resources(request))
    if result is None:
        raise Problem(409, "Conflict", "a refresh is running; retry in a moment")
    return RefreshRead(scored=result[0], membership_changes=result[1])


@segments_router.get("/{segment_id}", response_model=SegmentRead, responses={404: PROBLEM})
async def get_segment(uow: ReadUow, identity: CurrentIdentity,
                      segment_id: str = Path(max_length=100)) -> SegmentRead:
    identity.authorize(AGGREGATE_READERS)
    row, members = await definitions.get_segment(uow, segment_id)
    return rfm_segment_read(segment_id, members) if row is None else segment_read(row, members)


@segments_router.put("/{segment_id}", response_model=SegmentRead, responses={404: PROBLEM, 422: PROBLEM})
async def update_segment(body: SegmentUpdate, request: Request, uow: Uow, identity: CurrentIdentity,
                         segment_id: str = Path(max_length=100)) -> SegmentRead:
    """Change a custom segment's rule (supervisors); members are recomputed at once."""
    identity.authorize(SUPERVISOR)
    _rule(body.rule)
    row, members = await definitions.update_segment(uow, segment_id=segment_id, name=body.name,
                                                    description=body.description, rule=body.rule,
                                                    currency=resources(request).rfm_currency)
    answer = segment_read(row, members)
    await uow.commit()
    return answer


@segments_router.delete("/{segment_id}", status_code=204, responses={404: PROBLEM})
async def delete_segment(uow: Uow, identity: CurrentIdentity, segment_id: str = Path(max_length=100)) -> Response:
    """Remove a custom segment and its memberships (supervisors). No exit events are sent."""
    identity.authorize(SUPERVISOR)
    await definitions.delete_segment(uow, segment_id)
    await uow.commit()
    return Response(status_code=204)


@segments_router.get("/{segment_id}/members", response_model=SegmentMemberPage)
async def list_members(uow: ReadUow, identity: CurrentIdentity, segment_id: str = Path(max_length=100),
                       cursor: str | None = Query(None, max_length=100),
                       limit: int = Query(100, ge=1, le=1000)) -> SegmentMemberPage:
    """The customers in a segment (RFM or custom), in id order, paged with ``cursor``."""
    identity.authorize(STAFF)
    rows, next_cursor = await definitions.members_page(uow, segment_id, after=cursor or "", limit=limit)
    return SegmentMemberPage(items=[SegmentMember(customer_id=c, entered_at=at) for c, at in rows],
                             next_cursor=next_cursor)
