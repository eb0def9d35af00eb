"""The gateway's repository in memory: API keys in a dict, only what its use cases (and the API
key store) call. The real one is ``crm_gateway.repository.GatewayRepository``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_gateway.repository import ActiveKey

_LISTED = ("key_id", "client", "scopes", "created_by", "created_at", "revoked_at", "revoked_by")


class InMemoryGatewayRepository:
    def __init__(self) -> None:
        self.keys: dict[str, dict[str, Any]] = {}

    async def list_api_keys(self) -> list[dict[str, Any]]:
        rows = sorted(self.keys.values(), key=lambda row: row["created_at"], reverse=True)
        return [{name: row[name] for name in _LISTED} for row in rows]

    async def add_api_key(self, row: dict[str, Any]) -> None:
        assert row["key_id"] not in self.keys, "primary key"
        self.keys[row["key_id"]] = {"revoked_at": None, "revoked_by": None, **row}

    async def active_api_key(self, key_id: str) -> ActiveKey | None:
        row = self.keys.get(key_id)
        if row is None or row["revoked_at"] is not None:
            return None
        return ActiveKey(row["client"], row["secret_hash"], tuple(row["scopes"]))

    async def api_key_exists(self, key_id: str) -> bool:
        return key_id in self.keys

    async def revoke_api_key(self, key_id: str, *, by: str, at: datetime) -> bool:
        row = self.keys.get(key_id)
        if row is None or row["revoked_at"] is not None:
            return False
        row.update(revoked_at=at, revoked_by=by)
        return True
