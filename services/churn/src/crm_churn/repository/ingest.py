"""Recording the history the features need, from the consumed events: one multi-row statement
per batch and event type (a row is touched once per statement; the use cases pick one event per key)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_ORDER_PAID = text("""
    INSERT INTO churn_orders (order_id, customer_id, paid_at, currency, total_amount)
    SELECT * FROM unnest(CAST(:order_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:at AS timestamptz[]),
                         CAST(:currencies AS text[]), CAST(:totals AS numeric[]))
    ON CONFLICT (order_id) DO NOTHING
""")
_ORDER_CANCELLED = text("""
    UPDATE churn_orders o SET cancelled_at = COALESCE(o.cancelled_at, u.at)
    FROM unnest(CAST(:order_ids AS text[]), CAST(:at AS timestamptz[])) AS u(order_id, at)
    WHERE o.order_id = u.order_id
""")
_ORDER_REFUNDED = text("""
    UPDATE churn_orders o SET refunded_amount = LEAST(o.total_amount, o.refunded_amount + u.amount)
    FROM unnest(CAST(:order_ids AS text[]), CAST(:amounts AS numeric[])) AS u(order_id, amount)
    WHERE o.order_id = u.order_id
""")
_ACTIVITY = text("""
    INSERT INTO churn_activity AS a (customer_id, day, events)
    SELECT * FROM unnest(CAST(:customer_ids AS text[]), CAST(:days AS date[]), CAST(:counts AS integer[]))
    ON CONFLICT (customer_id, day) DO UPDATE SET events = a.events + excluded.events
""")
# A ticket seen first through a later event (the churn service started after it was opened) is
# recorded from that event: its kind if the event has one, opened at the event's time.
_TICKET_UPSERT = """
    INSERT INTO churn_tickets AS t (ticket_id, customer_id, kind, opened_at, {column})
    SELECT u.ticket_id, u.customer_id, u.kind, u.at, {value}
    FROM unnest(CAST(:ticket_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:kinds AS text[]),
                CAST(:at AS timestamptz[])) AS u(ticket_id, customer_id, kind, at)
    ON CONFLICT (ticket_id) DO UPDATE SET {column} = {update}
"""
_TICKET_OPENED = text("""
    INSERT INTO churn_tickets (ticket_id, customer_id, kind, opened_at)
    SELECT * FROM unnest(CAST(:ticket_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:kinds AS text[]),
                         CAST(:at AS timestamptz[]))
    ON CONFLICT (ticket_id) DO NOTHING
""")
_TICKET_RESOLVED = text(_TICKET_UPSERT.format(column="resolved_at", value="u.at",
                                              update="COALESCE(t.resolved_at, excluded.resolved_at)"))
_TICKET_REOPENED = text(_TICKET_UPSERT.format(column="resolved_at", value="CAST(NULL AS timestamptz)", update="NULL"))
_TICKET_BREACHED = text(_TICKET_UPSERT.format(column="breached_at", value="u.at",
                                              update="COALESCE(t.breached_at, excluded.breached_at)"))
_CSAT = text("""
    INSERT INTO churn_csat (ticket_id, customer_id, score, submitted_at)
    SELECT * FROM unnest(CAST(:ticket_ids AS text[]), CAST(:customer_ids AS text[]), CAST(:scores AS smallint[]),
                         CAST(:at AS timestamptz[]))
    ON CONFLICT (ticket_id) DO NOTHING
""")
_TICKETS = {"opened": _TICKET_OPENED, "resolved": _TICKET_RESOLVED, "reopened": _TICKET_REOPENED,
            "breached": _TICKET_BREACHED}


class IngestStatements:
    _db: AsyncConnection

    async def record_paid_orders(self, order_ids: Sequence[str], customer_ids: Sequence[str],
                                 at: Sequence[datetime], currencies: Sequence[str],
                                 totals: Sequence[Decimal]) -> None:
        await self._db.execute(_ORDER_PAID, {"order_ids": list(order_ids), "customer_ids": list(customer_ids),
                                             "at": list(at), "currencies": list(currencies),
                                             "totals": list(totals)})

    async def record_cancelled_orders(self, order_ids: Sequence[str], at: Sequence[datetime]) -> None:
        await self._db.execute(_ORDER_CANCELLED, {"order_ids": list(order_ids), "at": list(at)})

    async def record_refunds(self, order_ids: Sequence[str], amounts: Sequence[Decimal]) -> None:
        await self._db.execute(_ORDER_REFUNDED, {"order_ids": list(order_ids), "amounts": list(amounts)})

    async def add_activity(self, customer_ids: Sequence[str], days: Sequence[date], counts: Sequence[int]) -> None:
        await self._db.execute(_ACTIVITY, {"customer_ids": list(customer_ids), "days": list(days),
                                           "counts": list(counts)})

    async def record_tickets(self, change: str, ticket_ids: Sequence[str], customer_ids: Sequence[str],
                             kinds: Sequence[str], at: Sequence[datetime]) -> None:
        """``change`` is opened, resolved (or closed), reopened or breached."""
        await self._db.execute(_TICKETS[change], {"ticket_ids": list(ticket_ids), "customer_ids": list(customer_ids),
                                                  "kinds": list(kinds), "at": list(at)})

    async def record_ratings(self, ticket_ids: Sequence[str], customer_ids: Sequence[str], scores: Sequence[int],
                             at: Sequence[datetime]) -> None:
        await self._db.execute(_CSAT, {"ticket_ids": list(ticket_ids), "customer_ids": list(customer_ids),
                                       "scores": list(scores), "at": list(at)})
