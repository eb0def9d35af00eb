"""What every part of the profile's repository shares: the unit of work's connection."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection


class Queries:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

