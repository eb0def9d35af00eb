"""SQL of the adjustment requests: an agent's adjustment above their limit, waiting for a supervisor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text

from crm_loyalty.repository.base import Sql

_COLUMNS = ("seq, customer_id, points, reason, ticket_id, requested_by, requested_at, status, decided_by, "
            "decided_at, note, entry_id")
_CREATE = text(f"""
    INSERT INTO adjustment_requests (customer_id, points, reason, ticket_id, requested_by, requested_at)
    VALUES (:customer_id, :points, :reason, :ticket_id, :requested_by, :requested_at)
    RETURNING {_COLUMNS}""")
_ONE = text(f"SELECT {_COLUMNS} FROM adjustment_requests WHERE seq = :seq")
_LOCK = text(f"SELECT {_COLUMNS} FROM adjustment_requests WHERE seq = :seq FOR UPDATE")
_PAGE = text(f"""
    SELECT {_COLUMNS} FROM adjustment_requests
    WHERE (CAST(:status AS text) IS NULL OR status = :status) AND (CAST(:customer_id AS text) IS NULL
           OR customer_id = :customer_id) AND seq > :after
    ORDER BY seq LIMIT :limit""")
_DECIDE = text(f"""
    UPDATE adjustment_requests SET status = :status, decided_by = :decided_by, decided_at = :decided_at,
                                   note = :note, entry_id = :entry_id
    WHERE seq = :seq AND status = 'pending'
    RETURNING {_COLUMNS}""")


class AdjustmentRequestsSql(Sql):
    async def create_adjustment_request(self, request: dict[str, Any]) -> dict[str, Any]:
        return dict((await self.conn.execute(_CREATE, request)).mappings().one())

    async def adjustment_request(self, seq: int, *, lock: bool = False) -> dict[str, Any] | None:
        row = (await self.conn.execute(_LOCK if lock else _ONE, {"seq": seq})).mappings().first()
        return None if row is None else dict(row)

    async def adjustment_requests(self, *, status: str | None, customer_id: str | None, after: int,
                                  limit: int) -> list[dict[str, Any]]:
        rows = await self.conn.execute(_PAGE, {"status": status, "customer_id": customer_id, "after": after,
                                               "limit": limit})
        return [dict(row) for row in rows.mappings()]

    async def decide_adjustment_request(self, seq: int, *, status: str, decided_by: str, decided_at: datetime,
                                        note: str | None, entry_id: int | None) -> dict[str, Any]:
        return dict((await self.conn.execute(_DECIDE, {
            "seq": seq, "status": status, "decided_by": decided_by, "decided_at": decided_at, "note": note,
            "entry_id": entry_id})).mappings().one())
