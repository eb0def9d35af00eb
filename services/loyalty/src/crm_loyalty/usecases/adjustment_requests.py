"""Adjustments above an agent's limit: the agent asks, a supervisor decides. An approval applies the
adjustment as the supervisor's (the ledger's actor), in the same transaction that records the
decision, so a request is applied once however often it is approved; the requester can never
approve their own request (four eyes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_shared.errors import ConflictError, NotFoundError, NotPermitted, RuleViolation

from crm_loyalty.usecases import commands
from crm_loyalty.usecases.common import ProgrammeStore, Uow, now
from crm_loyalty.usecases.customers import refuse_if_erased

PREFIX = "AR-"


@dataclass(frozen=True, slots=True)
class AdjustmentRequest:
    request_id: str
    customer_id: str
    points: int
    reason: str
    ticket_id: str | None
    requested_by: str
    requested_at: datetime
    status: str
    decided_by: str | None
    decided_at: datetime | None
    note: str | None
    entry_id: int | None


def _request(row: dict[str, Any]) -> AdjustmentRequest:
    fields = {k: v for k, v in row.items() if k != "seq"}
    return AdjustmentRequest(request_id=f"{PREFIX}{row['seq']}", **fields)


def _seq(request_id: str) -> int:
    digits = request_id.removeprefix(PREFIX)
    if not request_id.startswith(PREFIX) or not digits.isdigit() or len(digits) > 18:
        raise NotFoundError.of("adjustment request", request_id)
    return int(digits)


async def request_adjustment(uow: Uow, store: ProgrammeStore, *, customer_id: str, points: int, reason: str,
                             ticket_id: str | None, actor: str) -> AdjustmentRequest:
    """Ask a supervisor for an adjustment the agent may not make: within the programme's
    ``supervisor_limit``, on an existing, not erased member."""
    programme = await commands.programme_for_commands(uow, store)
    if abs(points) > programme.adjustments.supervisor_limit:
        raise RuleViolation(f"adjustments are limited to {programme.adjustments.supervisor_limit} points",
                            code="unprocessable-content")
    member = await commands.locked_member(uow, customer_id, with_lots=False)
    refuse_if_erased(member.erased_at)
    row = await uow.repo.create_adjustment_request({
        "customer_id": customer_id, "points": points, "reason": reason, "ticket_id": ticket_id,
        "requested_by": actor, "requested_at": now()})
    return _request(row)


async def adjustment_request(uow: Uow, request_id: str) -> AdjustmentRequest:
    row = await uow.repo.adjustment_request(_seq(request_id))
    if row is None:
        raise NotFoundError.of("adjustment request", request_id)
    return _request(row)


async def adjustment_requests(uow: Uow, *, status: str | None, customer_id: str | None, cursor: str | None,
                              limit: int) -> tuple[list[AdjustmentRequest], str | None]:
    """Oldest first (the queue a supervisor works through), ``limit`` at a time."""
    after = _seq(cursor) if cursor else 0
    rows = await uow.repo.adjustment_requests(status=status, customer_id=customer_id, after=after, limit=limit + 1)
    page = [_request(row) for row in rows[:limit]]
    return page, (page[-1].request_id if len(rows) > limit else None)


async def decide(uow: Uow, store: ProgrammeStore, *, request_id: str, approve: bool, note: str | None,
                 actor: str, traceparent: str | None = None) -> AdjustmentRequest:
    """Approve (the adjustment is made, as the supervisor's) or reject a pending request. The same
    decision again answers the request as decided; the other decision is a conflict."""
    seq = _seq(request_id)
    row = await uow.repo.adjustment_request(seq, lock=True)
    if row is None:
        raise NotFoundError.of("adjustment request", request_id)
    wanted = "approved" if approve else "rejected"
    if row["status"] != "pending":
        if row["status"] == wanted:
            return _request(row)
        raise ConflictError(f"the request is {row['status']} already")
    if row["requested_by"] == actor:
        raise NotPermitted("a supervisor may not decide their own request")
    entry_id = None
    if approve:
        made = await commands.adjust(uow, store, customer_id=row["customer_id"], points=row["points"],
                                     reason=row["reason"], ticket_id=row["ticket_id"], actor=actor, supervisor=True,
                                     traceparent=traceparent)
        entry_id = made.entry_id
    decided = await uow.repo.decide_adjustment_request(seq, status=wanted, decided_by=actor, decided_at=now(),
                                                       note=note, entry_id=entry_id)
    return _request(decided)
