"""Each service's ``models.py`` is its migrated schema, column for column: no drift either way.

Alembic compares the metadata with a database its migrations built (tables, columns, types,
nullability, keys, indexes). A migration that forgets what a model says, or a model that forgets
what a migration did, fails here instead of surprising the next ``revision --autogenerate``.
"""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

SERVICES = ("profile", "loyalty", "tickets", "churn", "campaigns", "gateway")


@pytest.mark.parametrize("service", SERVICES)
async def test_the_migrations_build_exactly_the_models(make_database, service):
    metadata = importlib.import_module(f"crm_{service}.models").metadata
    database = make_database(service)
    engine = create_async_engine(database.url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata))
    finally:
        await engine.dispose()
    assert diff == [], f"{service}: models.py and the migrations differ:\n" + "\n".join(map(str, diff))
