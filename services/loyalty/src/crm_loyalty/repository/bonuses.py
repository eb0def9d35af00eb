"""SQL of the bonuses granted by reference (campaigns): once per member and reference."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from crm_loyalty.repository.base import Sql

_GRANT = text("""
    SELECT g.customer_id, g.reference, g.entry_id, g.points, g.available_after, g.debt_after, g.granted_by,
           g.granted_at, l.reason
    FROM bonus_grants g JOIN ledger l ON l.entry_id = g.entry_id
    WHERE g.customer_id = :customer_id AND g.reference = :reference
""")
_RECORD = text("""
    INSERT INTO bonus_grants (customer_id, reference, entry_id, points, available_after, debt_after, granted_by,
                              granted_at)
    VALUES (:customer_id, :reference, :entry_id, :points, :available_after, :debt_after, :granted_by, :granted_at)
""")


class BonusesSql(Sql):
    async def bonus_grant(self, customer_id: str, reference: str) -> dict[str, Any] | None:
        """The bonus this reference already paid the member, with the reason of its ledger entry."""
        row = (await self.conn.execute(_GRANT, {"customer_id": customer_id, "reference": reference})).mappings().first()
        return None if row is None else dict(row)

    async def record_bonus_grant(self, grant: dict[str, Any]) -> None:
        await self.conn.execute(_RECORD, grant)
