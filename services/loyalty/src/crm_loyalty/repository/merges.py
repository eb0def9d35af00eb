"""SQL for following profile merges: moving a duplicate's rows to its survivor and back, and the
shared ``customer_merges`` bookkeeping (``crm_shared.merges``). Repositories never commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from crm_shared import merges
from sqlalchemy import text

from crm_loyalty.repository.base import Sql

_MOVE = {
    "lots": text("UPDATE lots SET customer_id = :to WHERE customer_id = :from RETURNING lot_id"),
    "orders": text("UPDATE orders SET customer_id = :to WHERE customer_id = :from RETURNING order_id"),
    "redemptions": text("UPDATE redemptions SET customer_id = :to WHERE customer_id = :from RETURNING redemption_id"),
}
_MOVE_BACK = {
    "lots": text("""UPDATE lots SET customer_id = :to
                    WHERE customer_id = :from AND lot_id = ANY(CAST(:ids AS bigint[]))"""),
    "orders": text("""UPDATE orders SET customer_id = :to
                      WHERE customer_id = :from AND order_id = ANY(CAST(:ids AS text[]))"""),
    "redemptions": text("""UPDATE redemptions SET customer_id = :to
                           WHERE customer_id = :from AND redemption_id = ANY(CAST(:ids AS text[]))"""),
}
_LAST_ENTRY = text("SELECT coalesce(max(entry_id), 0) FROM ledger WHERE customer_id = :customer_id")
# What the duplicate's own orders and lots did on the survivor's account since the merge.
_DUPLICATES_OWN = text("""
    SELECT coalesce(sum(points), 0) AS points,
           coalesce(sum(points) FILTER (WHERE kind = 'reverse'), 0) AS reversed
    FROM ledger
    WHERE customer_id = :survivor AND entry_id > :since
      AND ((kind IN ('reverse', 'refund_of_spent') AND order_id = ANY(CAST(:orders AS text[])))
           OR (kind = 'expire' AND lot_id = ANY(CAST(:lots AS bigint[]))))
""")
_ORDER_OWNERS = text("SELECT order_id, customer_id FROM orders WHERE order_id = ANY(CAST(:ids AS text[]))")


class MergesSql(Sql):
    async def claim_merge(self, *, survivor: str, duplicate: str, at: datetime, event_id: str) -> int | None:
        return await merges.claim_merge(self.conn, survivor=survivor, duplicate=duplicate, at=at, event_id=event_id)

    async def set_moved(self, merge_id: int, moved: dict[str, Any]) -> None:
        await merges.set_moved(self.conn, merge_id, moved)

    async def lock_merge_in_force(self, *, survivor: str, duplicate: str) -> merges.MergeRecord | None:
        return await merges.lock_merge_in_force(self.conn, survivor=survivor, duplicate=duplicate)

    async def close_merge(self, merge_id: int, at: datetime) -> None:
        await merges.close_merge(self.conn, merge_id, at)

    async def ever_merged(self, pairs: Iterable[tuple[str, str]]) -> set[frozenset[str]]:
        return await merges.ever_merged(self.conn, pairs)

    async def move_everything(self, *, duplicate: str, survivor: str) -> dict[str, list[Any]]:
        """Every lot, order and redemption of ``duplicate`` now belongs to ``survivor``; their ids."""
        return {name: sorted(row[0] for row in await self.conn.execute(statement, {"from": duplicate,
                                                                                   "to": survivor}))
                for name, statement in _MOVE.items()}

    async def move_back(self, moved: dict[str, list[Any]], *, survivor: str, duplicate: str) -> None:
        """What a merge moved and the survivor still holds goes back to ``duplicate``."""
        for name, statement in _MOVE_BACK.items():
            await self.conn.execute(statement, {"from": survivor, "to": duplicate, "ids": moved[name]})

    async def last_ledger_entry(self, customer_id: str) -> int:
        return (await self.conn.execute(_LAST_ENTRY, {"customer_id": customer_id})).scalar_one()

    async def duplicates_own_movements(self, *, survivor: str, since: int, orders: Sequence[str],
                                       lots: Sequence[int]) -> tuple[int, int]:
        """Points the duplicate's orders (refunds, cancellations) and lots (expiry) moved on the
        survivor's account after ledger entry ``since``, and the part that was reversed earnings."""
        row = (await self.conn.execute(_DUPLICATES_OWN, {"survivor": survivor, "since": since,
                                                         "orders": list(orders), "lots": list(lots)})).one()
        return int(row.points), int(row.reversed)

    async def order_owners(self, order_ids: Sequence[str]) -> dict[str, str]:
        return {row.order_id: row.customer_id
                for row in await self.conn.execute(_ORDER_OWNERS, {"ids": sorted(set(order_ids))})}
