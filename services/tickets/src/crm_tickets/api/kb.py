"""The knowledge base: standard answers agents search and supervisors write."""

from __future__ import annotations

from typing import Annotated

from crm_shared.auth import CurrentIdentity
from fastapi import Path, Query

from crm_tickets.api.common import PROBLEM, STAFF, SUPERVISOR, ReadUow, Uow, kb_router, now
from crm_tickets.schemas import ArticleCreate, ArticleRead
from crm_tickets.usecases import admin


@kb_router.get("/articles", response_model=list[ArticleRead])
async def search_articles(uow: ReadUow, identity: CurrentIdentity,
                          q: Annotated[str | None, Query(max_length=200)] = None,
                          category: Annotated[str | None, Query(max_length=200)] = None,
                          limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[ArticleRead]:
    """Standard answers (agents), by full-text search (PostgreSQL, best match first) and category."""
    identity.authorize(STAFF)
    found = await admin.search_articles(uow, q=q, category=category, limit=limit)
    return [ArticleRead.model_validate(article) for article in found]


@kb_router.post("/articles", status_code=201, response_model=ArticleRead)
async def create_article(body: ArticleCreate, uow: Uow, identity: CurrentIdentity) -> ArticleRead:
    """Add a standard answer (supervisors)."""
    identity.authorize(SUPERVISOR)
    record = await admin.create_article(uow, body.model_dump(), by=identity.subject, now=now())
    await uow.commit()
    return ArticleRead(**record)


@kb_router.get("/articles/{article_id}", response_model=ArticleRead, responses={404: PROBLEM})
async def get_article(uow: ReadUow, identity: CurrentIdentity, article_id: str = Path(max_length=100)) -> ArticleRead:
    identity.authorize(STAFF)
    return ArticleRead.model_validate(await admin.article(uow, article_id))


@kb_router.put("/articles/{article_id}", response_model=ArticleRead, responses={404: PROBLEM})
async def update_article(body: ArticleCreate, uow: Uow, identity: CurrentIdentity,
                         article_id: str = Path(max_length=100)) -> ArticleRead:
    """Change a standard answer (supervisors)."""
    identity.authorize(SUPERVISOR)
    record = await admin.update_article(uow, article_id, body.model_dump(), by=identity.subject, now=now())
    await uow.commit()
    return ArticleRead(**record)
