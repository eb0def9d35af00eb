"""The policy document, queues, agents and the knowledge base."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text

from crm_tickets.repository.base import Bound

_SEARCH = text("""
    SELECT article_id, title, body, category, updated_by, updated_at,
           CASE WHEN CAST(:q AS text) IS NULL THEN NULL
                ELSE ts_rank(search, websearch_to_tsquery('simple', :q)) END AS rank
    FROM articles
    WHERE (CAST(:q AS text) IS NULL OR search @@ websearch_to_tsquery('simple', :q))
      AND (CAST(:category AS text) IS NULL OR category = :category)
    ORDER BY rank DESC NULLS LAST, updated_at DESC LIMIT :limit""")


def _json(value: Any) -> Any:
    return value if isinstance(value, dict | list) or value is None else orjson.loads(value)


class AdminRows(Bound):
    # -- the policy ---------------------------------------------------------------------------------

    async def seed_policy(self, config_json: str) -> None:
        await self.connection.execute(text("""INSERT INTO policy (version, config, created_by)
                                              VALUES (1, CAST(:config AS jsonb), 'system') ON CONFLICT DO NOTHING"""),
                                      {"config": config_json})

    async def policy_version(self) -> int:
        return (await self.connection.execute(text("SELECT max(version) FROM policy"))).scalar() or 0

    async def policy_config(self, version: int) -> dict[str, Any] | None:
        return _json((await self.connection.execute(text("SELECT config FROM policy WHERE version = :v"),
                                                    {"v": version})).scalar())

    async def latest_policy(self) -> dict[str, Any]:
        row = (await self.connection.execute(text("SELECT version, config, created_by, created_at FROM policy "
                                                  "ORDER BY version DESC LIMIT 1"))).one()
        return {**row._mapping, "config": _json(row.config)}

    async def lock_policy(self) -> int | None:
        """Lock the policy against concurrent saves; the latest version."""
        await self.connection.execute(text("LOCK TABLE policy IN EXCLUSIVE MODE"))
        return (await self.connection.execute(text("SELECT max(version) FROM policy"))).scalar()

    async def insert_policy(self, version: int, config_json: str, created_by: str) -> None:
        await self.connection.execute(text(
            "INSERT INTO policy (version, config, created_by) VALUES (:v, CAST(:c AS jsonb), :by)"),
            {"v": version, "c": config_json, "by": created_by})

    # -- queues and agents --------------------------------------------------------------------------

    async def groups(self) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in await self.connection.execute(text(
            "SELECT group_id, name, skills, strategy, last_agent FROM agent_groups ORDER BY group_id"))]

    async def upsert_group(self, group: dict[str, Any]) -> None:
        await self.connection.execute(text("""
            INSERT INTO agent_groups (group_id, name, skills, strategy) VALUES (:group_id, :name, :skills, :strategy)
            ON CONFLICT (group_id) DO UPDATE SET name = excluded.name, skills = excluded.skills,
                                                 strategy = excluded.strategy"""), group)

    async def agents(self) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in await self.connection.execute(text("""
            SELECT agent_id, name, groups, available, active_tickets AS open_tickets FROM agents
            ORDER BY agent_id"""))]

    async def upsert_agent(self, agent: dict[str, Any]) -> None:
        await self.connection.execute(text("""
            INSERT INTO agents (agent_id, name, groups, available) VALUES (:agent_id, :name, :groups, :available)
            ON CONFLICT (agent_id) DO UPDATE SET name = excluded.name, groups = excluded.groups,
                                                 available = excluded.available"""), agent)

    async def set_availability(self, agent_id: str, available: bool) -> bool:
        """False when there is no such agent."""
        return (await self.connection.execute(text(
            "UPDATE agents SET available = :v WHERE agent_id = :a RETURNING agent_id"),
            {"v": available, "a": agent_id})).first() is not None

    # -- the knowledge base -------------------------------------------------------------------------

    async def search_articles(self, q: str | None, category: str | None, limit: int) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in await self.connection.execute(
            _SEARCH, {"q": q, "category": category, "limit": limit})]

    async def insert_article(self, record: dict[str, Any]) -> None:
        await self.connection.execute(text("""
            INSERT INTO articles (article_id, title, body, category, updated_by, updated_at)
            VALUES (:article_id, :title, :body, :category, :updated_by, :updated_at)"""), record)

    async def article(self, article_id: str) -> dict[str, Any] | None:
        row = (await self.connection.execute(text(
            "SELECT article_id, title, body, category, updated_by, updated_at FROM articles WHERE article_id = :a"),
            {"a": article_id})).first()
        return None if row is None else dict(row._mapping)

    async def update_article(self, record: dict[str, Any]) -> bool:
        """False when there is no such article."""
        return (await self.connection.execute(text("""
            UPDATE articles SET title = :title, body = :body, category = :category, updated_by = :updated_by,
                                updated_at = :updated_at
            WHERE article_id = :article_id RETURNING article_id"""), record)).first() is not None
