"""What the reports read: the liability the programme carries (points owed, rewards owed, coupons
outstanding), database-wide, in one snapshot of the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text

from crm_loyalty.repository.base import Sql

_POINTS = text("""
    SELECT COALESCE(sum(available), 0) AS available, COALESCE(sum(pending), 0) AS pending,
           COALESCE(sum(debt), 0) AS debt, count(*) FILTER (WHERE available > 0 OR pending > 0) AS members_owed,
           (SELECT COALESCE(sum(remaining), 0) FROM lots
              WHERE state = 'available' AND expires_at <= :soon) AS expiring_30d,
           (SELECT COALESCE(sum(remaining), 0) FROM lots
              WHERE state = 'available' AND expires_at <= :later) AS expiring_90d
    FROM accounts
""")


class ReportsSql(Sql):
    async def points_liability(self, soon: datetime, later: datetime) -> dict[str, Any]:
        """The points owed: available, pending and debt summed over accounts, the members owed
        any, and the available points that expire by ``soon`` and by ``later``."""
        row = (await self.conn.execute(_POINTS, {"soon": soon, "later": later})).one()
        return {name: int(value) for name, value in row._mapping.items()}
