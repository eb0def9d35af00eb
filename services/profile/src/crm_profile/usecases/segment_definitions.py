"""The custom segments staff define (members are computed at once and kept current as events arrive),
every segment's size, and the RFM grid of recency × frequency scores."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from crm_shared.errors import ConflictError, NotFoundError, RuleViolation
from crm_shared.uow import UnitOfWork

from crm_profile.domain.segments import RFM_SEGMENTS
from crm_profile.repository import ProfileRepository
from crm_profile.repository.segments import RfmCell
from crm_profile.usecases.segments import refresh_segments

Uow = UnitOfWork[ProfileRepository]


def rfm_name(segment_id: str) -> str | None:
    """The RFM segment an id names (``rfm:<name>``), or None."""
    name = segment_id[4:] if segment_id.startswith("rfm:") else None
    return name if name in RFM_SEGMENTS else None


async def list_segments(uow: Uow) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The custom segments' definitions and every segment's size (``rfm:<name>`` included)."""
    sizes = await uow.repo.segment_sizes()
    return await uow.repo.segment_definitions(), sizes


async def get_segment(uow: Uow, segment_id: str) -> tuple[dict[str, Any] | None, int]:
    """A custom segment's definition (None for an RFM segment) and its size."""
    sizes = await uow.repo.segment_sizes()
    if rfm_name(segment_id):
        return None, sizes.get(segment_id, 0)
    row = await uow.repo.segment_definition(segment_id)
    if row is None:
        raise NotFoundError.of("segment", segment_id)
    return row, sizes.get(segment_id, 0)


async def create_segment(uow: Uow, *, segment_id: str, name: str, description: str | None, rule: dict[str, Any],
                         created_by: str, currency: str) -> tuple[dict[str, Any], int]:
    """Define a custom segment (the rule already validated) and compute its members."""
    if segment_id.startswith("rfm"):
        raise RuleViolation("segment ids starting with rfm are reserved", code="invalid-request",
                            title="Invalid request")
    if not await uow.repo.create_segment(segment_id=segment_id, name=name, description=description, rule=rule,
                                         created_by=created_by):
        raise ConflictError(f"segment {segment_id!r} exists; PUT changes it")
    return await _recomputed(uow, segment_id, currency)


async def update_segment(uow: Uow, *, segment_id: str, name: str, description: str | None, rule: dict[str, Any],
                         currency: str) -> tuple[dict[str, Any], int]:
    if not await uow.repo.update_segment(segment_id=segment_id, name=name, description=description, rule=rule):
        raise NotFoundError.of("segment", segment_id)
    return await _recomputed(uow, segment_id, currency)


async def _recomputed(uow: Uow, segment_id: str, currency: str) -> tuple[dict[str, Any], int]:
    await refresh_segments(uow, currency, segment_id=segment_id)
    row = await uow.repo.segment_definition(segment_id)
    return row, (await uow.repo.segment_sizes()).get(segment_id, 0)


async def delete_segment(uow: Uow, segment_id: str) -> None:
    """Its memberships go with it; no exit events are sent."""
    if not await uow.repo.delete_segment(segment_id):
        raise NotFoundError.of("segment", segment_id)


async def members_page(uow: Uow, segment_id: str, *, after: str, limit: int) -> tuple[list[tuple[str, Any]],
                                                                                       str | None]:
    rows = await uow.repo.members_page(segment_id, after=after, limit=limit + 1)
    return rows[:limit], rows[limit - 1][0] if len(rows) > limit else None


class RfmGrid(NamedTuple):
    cells: list[RfmCell]  # all 25, recency score 5 down to 1, then frequency score 1 to 5
    customers: int
    value: Decimal
    scored_at: datetime | None  # the latest score in the grid; None before the first refresh


async def rfm_grid(uow: Uow, currency: str) -> RfmGrid:
    """Customers and their net spend per pair of recency and frequency scores: every one of the 25
    cells, empty ones as zeros, so a chart of it always has the same shape."""
    found = {(cell.r, cell.f): cell for cell in await uow.repo.rfm_grid(currency)}
    cells = [found.get((r, f)) or RfmCell(r, f, 0, Decimal(0)) for r in range(5, 0, -1) for f in range(1, 6)]
    scored = [cell.scored_at for cell in cells if cell.scored_at is not None]
    return RfmGrid(cells, sum(cell.customers for cell in cells), sum((cell.value for cell in cells), Decimal(0)),
                   max(scored, default=None))
