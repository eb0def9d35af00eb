"""Following profile merges (the duplicate's history moves to the survivor, and back on an unmerge)
and erasure (the customer's history and score are deleted, and a tombstone kept)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from crm_shared.erasure import erased_among, record_erased
from crm_shared.merges import MergeRecord, claim_merge, close_merge, lock_merge_in_force, set_moved
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
# A survivor's day that only held the duplicate's activity goes (deleted first: subtracting would
# leave 0, which the table's CHECK (events > 0) refuses); a day with its own activity keeps the rest.
_ACTIVITY_BACK = [
    text("""DELETE FROM churn_activity a
            USING unnest(CAST(:days AS date[]), CAST(:counts AS integer[])) AS u(day, events)
            WHERE a.customer_id = :survivor AND a.day = u.day AND a.events <= u.events"""),
    text("""UPDATE churn_activity a SET events = a.events - u.events
            FROM unnest(CAST(:days AS date[]), CAST(:counts AS integer[])) AS u(day, events)
            WHERE a.customer_id = :survivor AND a.day = u.day"""),
    text("""INSERT INTO churn_activity AS a (customer_id, day, events)
            SELECT :duplicate, day, events
            FROM unnest(CAST(:days AS date[]), CAST(:counts AS integer[])) AS u(day, events)
            ON CONFLICT (customer_id, day) DO UPDATE SET events = a.events + excluded.events"""),
]

HISTORY_TABLES = ("churn_orders", "churn_activity", "churn_tickets", "churn_csat", "churn_scores", "churn_customers")
_DELETE = {table: text(f"DELETE FROM {table} WHERE customer_id = ANY(CAST(:ids AS text[]))")
           for table in HISTORY_TABLES}


class MergeStatements:
    _db: AsyncConnection

    async def claim_merge(self, *, survivor: str, duplicate: str, at: datetime, event_id: str) -> int | None:
        return await claim_merge(self._db, survivor=survivor, duplicate=duplicate, at=at, event_id=event_id)

    async def set_moved(self, merge_id: int, moved: dict[str, Any]) -> None:
        await set_moved(self._db, merge_id, moved)

    async def lock_merge_in_force(self, *, survivor: str, duplicate: str) -> MergeRecord | None:
        return await lock_merge_in_force(self._db, survivor=survivor, duplicate=duplicate)

    async def close_merge(self, merge_id: int, at: datetime) -> None:
        await close_merge(self._db, merge_id, at)

    async def move_history(self, *, duplicate: str, survivor: str) -> dict[str, Any]:
        """The duplicate's orders, tickets and ratings become the survivor's and its daily activity is
        added to the survivor's; its score goes. Returns what moved (ids, and activity per day)."""
        ids = {"survivor": survivor, "duplicate": duplicate}
        moved: dict[str, Any] = {"activity": [[row.day.isoformat(), row.events]
                                              for row in await self._db.execute(_ACTIVITY_OF, ids)]}
        await self._db.execute(_MERGE_ACTIVITY, ids)
        for name, (table, key) in _ROWS.items():
            moved[name] = sorted(row[0] for row in await self._db.execute(text(
                f"UPDATE {table} SET customer_id = :survivor WHERE customer_id = :duplicate RETURNING {key}"), ids))
        for table in ("churn_activity", "churn_scores", "churn_customers"):
            await self._db.execute(text(f"DELETE FROM {table} WHERE customer_id = :duplicate"), ids)
        return moved

    async def move_history_back(self, moved: dict[str, Any], *, survivor: str, duplicate: str) -> None:
        """What ``move_history`` moved goes back; activity and events since stay with the survivor."""
        ids = {"survivor": survivor, "duplicate": duplicate}
        for name, (table, key) in _ROWS.items():
            await self._db.execute(text(f"UPDATE {table} SET customer_id = :duplicate "
                                        f"WHERE customer_id = :survivor AND {key} = ANY(CAST(:ids AS text[]))"),
                                   {**ids, "ids": moved.get(name, [])})
        activity = {"days": [date.fromisoformat(day) for day, _ in moved.get("activity", [])],
                    "counts": [events for _, events in moved.get("activity", [])]}
        for statement in _ACTIVITY_BACK:
            await self._db.execute(statement, {**ids, **activity})

    async def erased_among(self, customer_ids: Sequence[str]) -> set[str]:
        return await erased_among(self._db, customer_ids)

    async def erase(self, erased_at: Mapping[str, datetime]) -> None:
        """Tombstone these customers and delete their history and score (a replay changes nothing)."""
        ids = await record_erased(self._db, erased_at)
        for statement in _DELETE.values():
            await self._db.execute(statement, {"ids": ids})
