"""What the archive shows staff page by page: a customer's orders, timeline, notes and look-alikes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, tuple_

from crm_profile.models import customer_notes, orders, timeline
from crm_profile.repository.base import Queries

_DUPLICATES = text("""
    SELECT o.customer_id,
           (o.email_bidx IS NOT NULL AND o.email_bidx = c.email_bidx) AS same_email,
           (o.phone_bidx IS NOT NULL AND o.phone_bidx = c.phone_bidx) AS same_phone
    FROM customers c JOIN customers o
      ON o.customer_id <> c.customer_id AND (o.email_bidx = c.email_bidx OR o.phone_bidx = c.phone_bidx)
    WHERE c.customer_id = :customer_id AND o.erased_at IS NULL AND o.merged_into IS NULL
    ORDER BY o.customer_id LIMIT 50
""")


class ReadQueries(Queries):
    async def orders_page(self, customer_id: str, *, status: str | None, after: tuple[datetime, str] | None,
                          limit: int) -> list[dict[str, Any]]:
        """The customer's orders, newest first (by paid or placed time, then id), after the cursor."""
        when = func.coalesce(orders.c.paid_at, orders.c.placed_at)
        query = (select(orders, when.label("sort_at")).where(orders.c.customer_id == customer_id)
                 .order_by(when.desc(), orders.c.order_id.desc()).limit(limit))
        if status is not None:
            query = query.where(orders.c.status == status)
        if after is not None:
            query = query.where(tuple_(when, orders.c.order_id) < tuple_(*after))
        return [dict(row._mapping) for row in await self.connection.execute(query)]

    async def timeline_page(self, customer_id: str, *, kind: str | None, since: datetime | None,
                            until: datetime | None, after: tuple[datetime, int] | None,
                            limit: int) -> list[dict[str, Any]]:
        """Timeline entries, newest first; ``kind`` is a full kind or a prefix of one (``order``)."""
        query = (select(timeline).where(timeline.c.customer_id == customer_id)
                 .order_by(timeline.c.occurred_at.desc(), timeline.c.id.desc()).limit(limit))
        if kind is not None:
            query = query.where((timeline.c.kind == kind) | timeline.c.kind.startswith(kind.rstrip(".") + ".",
                                                                                         autoescape=True))
        if since is not None:
            query = query.where(timeline.c.occurred_at >= since)
        if until is not None:
            query = query.where(timeline.c.occurred_at < until)
        if after is not None:
            query = query.where(tuple_(timeline.c.occurred_at, timeline.c.id) < tuple_(*after))
        return [dict(row._mapping) for row in await self.connection.execute(query)]

    async def add_note(self, note: dict[str, Any]) -> None:
        await self.connection.execute(insert(customer_notes).values(**note))

    async def notes_of(self, customer_id: str, limit: int) -> list[dict[str, Any]]:
        rows = await self.connection.execute(select(customer_notes).where(customer_notes.c.customer_id == customer_id)
                                             .order_by(customer_notes.c.created_at.desc()).limit(limit))
        return [dict(row._mapping) for row in rows]

    async def find_duplicates(self, customer_id: str) -> list[tuple[str, bool, bool]]:
        """(customer id, same e-mail, same phone) of the other profiles sharing an identifier."""
        return [(row.customer_id, row.same_email, row.same_phone)
                for row in await self.connection.execute(_DUPLICATES, {"customer_id": customer_id})]
