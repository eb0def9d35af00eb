"""The custom segments' definitions as the API reads and changes them, and their members.

Computing membership (RFM scores, rules) is the segment refresh's (``repository/segments.py``, whose
statements ``ProfileRepository`` also carries, so a command re-evaluates segments in its own
transaction).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_profile.models import customers, segment_members, segments
from crm_profile.repository.base import Queries


class SegmentQueries(Queries):
    async def segment_definitions(self) -> list[dict[str, Any]]:
        rows = await self.connection.execute(select(segments).order_by(segments.c.segment_id))
        return [dict(row._mapping) for row in rows]

    async def segment_definition(self, segment_id: str) -> dict[str, Any] | None:
        row = (await self.connection.execute(select(segments).where(segments.c.segment_id == segment_id))).first()
        return None if row is None else dict(row._mapping)

    async def create_segment(self, *, segment_id: str, name: str, description: str | None, rule: dict[str, Any],
                             created_by: str) -> bool:
        """False when the id is taken."""
        inserted = await self.connection.execute(pg_insert(segments).values(
            segment_id=segment_id, name=name, description=description, rule=rule,
            created_by=created_by).on_conflict_do_nothing().returning(segments.c.segment_id))
        return inserted.first() is not None

    async def update_segment(self, *, segment_id: str, name: str, description: str | None,
                             rule: dict[str, Any]) -> bool:
        """False for an unknown segment."""
        updated = await self.connection.execute(update(segments).where(segments.c.segment_id == segment_id)
                                                .values(name=name, description=description, rule=rule,
                                                        updated_at=func.now()).returning(segments.c.segment_id))
        return updated.first() is not None

    async def delete_segment(self, segment_id: str) -> bool:
        """Its memberships go with it (ON DELETE CASCADE); False for an unknown segment."""
        deleted = await self.connection.execute(delete(segments).where(segments.c.segment_id == segment_id)
                                                .returning(segments.c.segment_id))
        return deleted.first() is not None

    async def members_page(self, segment_id: str, *, after: str, limit: int) -> list[tuple[str, Any]]:
        """(customer id, entered at) of a segment's members (``rfm:<name>`` or custom), in id order."""
        if segment_id.startswith("rfm:"):
            query = (select(customers.c.customer_id, customers.c.rfm_scored_at.label("entered_at"))
                     .where(customers.c.rfm_segment == segment_id[4:], customers.c.erased_at.is_(None),
                            customers.c.customer_id > after).order_by(customers.c.customer_id).limit(limit))
        else:
            query = (select(segment_members.c.customer_id, segment_members.c.entered_at)
                     .where(segment_members.c.segment_id == segment_id, segment_members.c.customer_id > after)
                     .order_by(segment_members.c.customer_id).limit(limit))
        return [(row.customer_id, row.entered_at) for row in await self.connection.execute(query)]
