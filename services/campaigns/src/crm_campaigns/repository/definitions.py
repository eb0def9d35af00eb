"""Audiences, templates and campaigns as managed through the API: rows in and out, the version a
change was made against, and a campaign's status. Repositories never commit; the use cases decide.

JSON columns go in as text cast to jsonb (orjson), and come out as Python values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text

from crm_campaigns.repository.base import Sql

_JSON_COLUMNS = ("definition", "contents", "schedule", "actions", "rules")

_INSERT_AUDIENCE = text("""
    INSERT INTO audiences (audience_id, name, definition, created_by, created_at, updated_at)
    VALUES (:audience_id, :name, CAST(:definition AS jsonb), :actor, :at, :at)
    ON CONFLICT (audience_id) DO NOTHING RETURNING *""")
_UPDATE_AUDIENCE = text("""
    UPDATE audiences SET name = :name, definition = CAST(:definition AS jsonb), version = version + 1, updated_at = :at
    WHERE audience_id = :audience_id RETURNING *""")
_AUDIENCE = text("SELECT * FROM audiences WHERE audience_id = :audience_id")
_AUDIENCE_FOR_UPDATE = text("SELECT * FROM audiences WHERE audience_id = :audience_id FOR UPDATE")
_AUDIENCES = text("SELECT * FROM audiences ORDER BY created_at DESC, audience_id LIMIT :limit")

_INSERT_TEMPLATE = text("""
    INSERT INTO templates (template_id, name, channel, contents, created_by, created_at, updated_at)
    VALUES (:template_id, :name, :channel, CAST(:contents AS jsonb), :actor, :at, :at)
    ON CONFLICT (template_id) DO NOTHING RETURNING *""")
_UPDATE_TEMPLATE = text("""
    UPDATE templates SET name = :name, channel = :channel, contents = CAST(:contents AS jsonb),
                         version = version + 1, updated_at = :at
    WHERE template_id = :template_id RETURNING *""")
_TEMPLATE = text("SELECT * FROM templates WHERE template_id = :template_id")
_TEMPLATE_FOR_UPDATE = text("SELECT * FROM templates WHERE template_id = :template_id FOR UPDATE")
_TEMPLATES = text("SELECT * FROM templates ORDER BY created_at DESC, template_id LIMIT :limit")

_CAMPAIGN_VALUES = """name = :name, kind = :kind, audience_id = :audience_id, template_id = :template_id,
    schedule = CAST(:schedule AS jsonb), actions = CAST(:actions AS jsonb), rules = CAST(:rules AS jsonb)"""
_INSERT_CAMPAIGN = text("""
    INSERT INTO campaigns (campaign_id, name, kind, audience_id, template_id, schedule, actions, rules,
                           created_by, created_at, updated_at)
    VALUES (:campaign_id, :name, :kind, :audience_id, :template_id, CAST(:schedule AS jsonb),
            CAST(:actions AS jsonb), CAST(:rules AS jsonb), :actor, :at, :at)
    ON CONFLICT (campaign_id) DO NOTHING RETURNING *""")
# A changed definition needs a new estimate and, above the threshold, a new approval.
_UPDATE_CAMPAIGN = text(f"""
    UPDATE campaigns SET {_CAMPAIGN_VALUES}, estimated_size = NULL, approved_by = NULL, approved_at = NULL,
                         version = version + 1, updated_at = :at
    WHERE campaign_id = :campaign_id RETURNING *""")
_CAMPAIGN_STATUS = text("""
    UPDATE campaigns SET status = :status, estimated_size = COALESCE(:estimated_size, estimated_size),
                         approved_by = COALESCE(:approved_by, approved_by),
                         approved_at = COALESCE(:approved_at, approved_at), version = version + 1, updated_at = :at
    WHERE campaign_id = :campaign_id RETURNING *""")
_CAMPAIGN = text("SELECT * FROM campaigns WHERE campaign_id = :campaign_id")
_CAMPAIGN_FOR_UPDATE = text("SELECT * FROM campaigns WHERE campaign_id = :campaign_id FOR UPDATE")
_CAMPAIGNS = text("""
    SELECT * FROM campaigns WHERE (CAST(:status AS text) IS NULL OR status = :status)
      AND (CAST(:after_at AS timestamptz) IS NULL OR (created_at, campaign_id) < (:after_at, :after_id))
    ORDER BY created_at DESC, campaign_id DESC LIMIT :limit""")


def _dumped(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: orjson.dumps(v).decode() if k in _JSON_COLUMNS else v for k, v in values.items()}


def _loaded(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    found = dict(row._mapping)
    for key in _JSON_COLUMNS:
        if isinstance(found.get(key), str | bytes):
            found[key] = orjson.loads(found[key])
    return found


class DefinitionsSql(Sql):
    async def _one(self, statement: Any, params: Mapping[str, Any]) -> dict[str, Any] | None:
        return _loaded((await self.conn.execute(statement, _dumped(params))).first())

    async def _all(self, statement: Any, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [_loaded(r) for r in await self.conn.execute(statement, params)]  # type: ignore[misc]

    # -- audiences ---------------------------------------------------------------------------------

    async def insert_audience(self, audience: Mapping[str, Any], *, actor: str, at: datetime) -> dict[str, Any] | None:
        """The new row; None if the id is taken. ``audience``: audience_id, name, definition."""
        return await self._one(_INSERT_AUDIENCE, {**audience, "actor": actor, "at": at})

    async def update_audience(self, audience: Mapping[str, Any], *, at: datetime) -> dict[str, Any]:
        return await self._one(_UPDATE_AUDIENCE, {**audience, "at": at})  # type: ignore[return-value]

    async def audience(self, audience_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        return await self._one(_AUDIENCE_FOR_UPDATE if lock else _AUDIENCE, {"audience_id": audience_id})

    async def audiences(self, limit: int) -> list[dict[str, Any]]:
        return await self._all(_AUDIENCES, {"limit": limit})

    # -- templates ---------------------------------------------------------------------------------

    async def insert_template(self, template: Mapping[str, Any], *, actor: str, at: datetime) -> dict[str, Any] | None:
        """The new row; None if the id is taken. ``template``: template_id, name, channel, contents."""
        return await self._one(_INSERT_TEMPLATE, {**template, "actor": actor, "at": at})

    async def update_template(self, template: Mapping[str, Any], *, at: datetime) -> dict[str, Any]:
        return await self._one(_UPDATE_TEMPLATE, {**template, "at": at})  # type: ignore[return-value]

    async def template(self, template_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        return await self._one(_TEMPLATE_FOR_UPDATE if lock else _TEMPLATE, {"template_id": template_id})

    async def templates(self, limit: int) -> list[dict[str, Any]]:
        return await self._all(_TEMPLATES, {"limit": limit})

    # -- campaigns ---------------------------------------------------------------------------------

    async def insert_campaign(self, campaign: Mapping[str, Any], *, actor: str, at: datetime) -> dict[str, Any] | None:
        """The new draft; None if the id is taken. ``campaign``: campaign_id, name, kind, audience_id,
        template_id, schedule, actions, rules."""
        return await self._one(_INSERT_CAMPAIGN, {**campaign, "actor": actor, "at": at})

    async def update_campaign(self, campaign: Mapping[str, Any], *, at: datetime) -> dict[str, Any]:
        """Replace the definition; the estimate and any approval are dropped with the old one."""
        return await self._one(_UPDATE_CAMPAIGN, {**campaign, "at": at})  # type: ignore[return-value]

    async def set_campaign_status(self, campaign_id: str, status: str, *, at: datetime,
                                  estimated_size: int | None = None, approved_by: str | None = None,
                                  approved_at: datetime | None = None) -> dict[str, Any]:
        return await self._one(_CAMPAIGN_STATUS, {  # type: ignore[return-value]
            "campaign_id": campaign_id, "status": status, "estimated_size": estimated_size,
            "approved_by": approved_by, "approved_at": approved_at, "at": at})

    async def campaign(self, campaign_id: str, *, lock: bool = False) -> dict[str, Any] | None:
        return await self._one(_CAMPAIGN_FOR_UPDATE if lock else _CAMPAIGN, {"campaign_id": campaign_id})

    async def campaigns(self, status: str | None, limit: int,
                        after: tuple[datetime, str] | None = None) -> list[dict[str, Any]]:
        after_at, after_id = after or (None, "")
        return await self._all(_CAMPAIGNS, {"status": status, "limit": limit, "after_at": after_at,
                                            "after_id": after_id})
