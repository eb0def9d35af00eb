"""What every part of the campaigns repository shares: the unit of work's connection."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection


class Sql:
    """One part of :class:`crm_campaigns.repository.CampaignsRepository`, bound to one connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
