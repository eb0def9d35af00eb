"""SQL for following profile merges (kept apart from ``repository.py``). Repositories never commit."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_ROWS = {"orders": ("churn_orders", "order_id"), "tickets": ("churn_tickets", "ticket_id"),
         "csat": ("churn_csat", "ticket_id")}
_ACTIVITY_OF = text("SELECT day, events FROM churn_activity WHERE customer_id = :duplicate ORDER BY day")
_MERGE_ACTIVITY = text("""
    INSERT INTO churn_activity AS a (customer_id, day, events)
    SELECT :survivor, day, events FROM churn_activity WHERE customer_id = :duplicate
    ON CONFLICT (customer_id, day) DO UPDATE SET events = a.events + excluded.events
""")
_ACTIVITY_BACK = [
    text("""UPDATE churn_activity a SET events = a.events - u.events
            FROM unnest(CAST(:days AS date[]), CAST(:counts AS integer[])) AS u(day, events)
            WHERE a.customer_id = :survivor AND a.day = u.day"""),
    text("DELETE FROM churn_activity WHERE customer_id = :survivor AND events <= 0"),
    text("""INSERT INTO churn_activity AS a (customer_id, day, events)
            SELECT :duplicate, day, events
            FROM unnest(CAST(:days AS date[]), CAST(:counts AS integer[])) AS u(day, events)
            ON CONFLICT (customer_id, day) DO UPDATE SET events = a.events + excluded.events"""),
]


async def move_history(tx: AsyncConnection, *, duplicate: str, survivor: str) -> dict[str, Any]:
    """The duplicate's orders, tickets and ratings become the survivor's and its daily activity is
    added to the survivor's; its score goes. Returns what moved (ids, and activity per day)."""
    ids = {"survivor": survivor, "duplicate": duplicate}
    moved: dict[str, Any] = {"activity": [[row.day.isoformat(), row.events]
                                          for row in await tx.execute(_ACTIVITY_OF, ids)]}
    await tx.execute(_MERGE_ACTIVITY, ids)
    for name, (table, key) in _ROWS.items():
        moved[name] = sorted(row[0] for row in await tx.execute(text(
            f"UPDATE {table} SET customer_id = :survivor WHERE customer_id = :duplicate RETURNING {key}"), ids))
    for table in ("churn_activity", "churn_scores", "churn_customers"):
        await tx.execute(text(f"DELETE FROM {table} WHERE customer_id = :duplicate"), ids)
    return moved


async def move_history_back(tx: AsyncConnection, moved: dict[str, Any], *, survivor: str, duplicate: str) -> None:
    """What ``move_history`` moved goes back; activity and events since stay with the survivor."""
    ids = {"survivor": survivor, "duplicate": duplicate}
    for name, (table, key) in _ROWS.items():
        await tx.execute(text(f"UPDATE {table} SET customer_id = :duplicate "
                              f"WHERE customer_id = :survivor AND {key} = ANY(CAST(:ids AS text[]))"),
                         {**ids, "ids": moved.get(name, [])})
    activity = {"days": [date.fromisoformat(day) for day, _ in moved.get("activity", [])],
                "counts": [events for _, events in moved.get("activity", [])]}
    for statement in _ACTIVITY_BACK:
        await tx.execute(statement, {**ids, **activity})
