"""The policy document, queues, agents and the knowledge base (supervisors' settings)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from crm_shared.errors import NotFoundError

from crm_tickets.domain.policy import StalePolicy, TicketsPolicy
from crm_tickets.usecases.workflow import Uow


async def current_policy(uow: Uow) -> dict[str, Any]:
    """The latest version: version, config (a ``TicketsPolicy``), created_by, created_at."""
    latest = await uow.repo.latest_policy()
    return {**latest, "config": TicketsPolicy.model_validate(latest["config"])}


async def save_policy(uow: Uow, *, config: TicketsPolicy, by: str, if_match: str | None) -> int:
    """A new version; ``if_match`` (an ``If-Match`` value: the version read) refuses a lost update."""
    latest = await uow.repo.lock_policy()
    if if_match is not None and if_match.strip('"W/') != str(latest):
        raise StalePolicy(f"the policy is at version {latest}, not {if_match}")
    await uow.repo.insert_policy(latest + 1, config.model_dump_json(), by)
    return latest + 1


async def groups(uow: Uow) -> list[dict[str, Any]]:
    return await uow.repo.groups()


async def put_group(uow: Uow, group: dict[str, Any]) -> dict[str, Any]:
    await uow.repo.upsert_group(group)
    return group


async def agents(uow: Uow) -> list[dict[str, Any]]:
    return await uow.repo.agents()


async def put_agent(uow: Uow, agent_id: str, agent: dict[str, Any]) -> dict[str, Any]:
    record = {**agent, "agent_id": agent_id}
    await uow.repo.upsert_agent(record)
    return record


async def set_availability(uow: Uow, agent_id: str, available: bool) -> None:
    if not await uow.repo.set_availability(agent_id, available):
        raise NotFoundError.of("agent", agent_id)


async def search_articles(uow: Uow, *, q: str | None, category: str | None, limit: int) -> list[dict[str, Any]]:
    return await uow.repo.search_articles(q, category, limit)


async def create_article(uow: Uow, article: dict[str, Any], *, by: str, now: datetime) -> dict[str, Any]:
    record = {**article, "article_id": f"kb-{uuid.uuid4().hex[:12]}", "updated_by": by, "updated_at": now}
    await uow.repo.insert_article(record)
    return record


async def article(uow: Uow, article_id: str) -> dict[str, Any]:
    found = await uow.repo.article(article_id)
    if found is None:
        raise NotFoundError.of("article", article_id)
    return found


async def update_article(uow: Uow, article_id: str, article: dict[str, Any], *, by: str,
                         now: datetime) -> dict[str, Any]:
    record = {**article, "article_id": article_id, "updated_by": by, "updated_at": now}
    if not await uow.repo.update_article(record):
        raise NotFoundError.of("article", article_id)
    return record
