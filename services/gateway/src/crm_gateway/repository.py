"""All SQL of the gateway: its API keys. The outbox is written through the unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_gateway.models import api_keys

_t = api_keys.c


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """What verifying a presented key needs: never the key itself, only its secret's hash."""

    client: str
    secret_hash: bytes
    scopes: tuple[str, ...]


class GatewayRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def list_api_keys(self) -> list[dict[str, Any]]:
        """Every key ever issued (revoked ones too), newest first, without the secret hashes."""
        rows = await self.connection.execute(select(_t.key_id, _t.client, _t.scopes, _t.created_by, _t.created_at,
                                                    _t.revoked_at, _t.revoked_by).order_by(_t.created_at.desc()))
        return [dict(row._mapping) for row in rows]

    async def add_api_key(self, row: dict[str, Any]) -> None:
        await self.connection.execute(insert(api_keys).values(**row))

    async def active_api_key(self, key_id: str) -> ActiveKey | None:
        row = (await self.connection.execute(select(_t.client, _t.secret_hash, _t.scopes)
                                             .where(_t.key_id == key_id, _t.revoked_at.is_(None)))).first()
        return ActiveKey(row.client, bytes(row.secret_hash), tuple(row.scopes)) if row else None

    async def api_key_exists(self, key_id: str) -> bool:
        return (await self.connection.execute(select(_t.key_id).where(_t.key_id == key_id))).first() is not None

    async def revoke_api_key(self, key_id: str, *, by: str, at: datetime) -> bool:
        """Revoke a key not revoked yet; False when there was none such."""
        result = await self.connection.execute(update(api_keys).where(_t.key_id == key_id, _t.revoked_at.is_(None))
                                               .values(revoked_at=at, revoked_by=by))
        return result.rowcount == 1
