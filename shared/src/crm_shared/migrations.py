"""Alembic conventions shared by every service's ``migrations/``.

Each service keeps its revisions in ``crm_<name>/migrations/versions``; its ``env.py`` is the same
two lines calling :func:`run_env`. The outbox and inbox tables come from :func:`create_bus_tables`,
called by each service's first revision, so the bus schema is identical everywhere.
"""

from __future__ import annotations

import asyncio

from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.ext.asyncio import create_async_engine


def alembic_config(script_location: str, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(script_location: str, database_url: str, revision: str = "head") -> None:
    """Apply a service's migrations (sync; call it outside a running event loop)."""
    command.upgrade(alembic_config(script_location, database_url), revision)


class SchemaNotMigrated(RuntimeError):
    """The service's database is behind the code: `crm migrate NAME` has not run."""


def schema_state(script_location: str, current: str | None) -> str:
    """``current`` (the database's alembic_version) against the code's revisions.

    ``"ok"``: at the head. ``"newer"``: a revision this code does not know, i.e. a later release
    migrated it (expand/contract migrations keep the previous release working during a rollout).
    ``"behind"``: missing or an older revision of this code; the service must not start on it.
    """
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(script_location, "postgresql://unused"))
    if current is not None and current in script.get_heads():
        return "ok"
    known = {revision.revision for revision in script.walk_revisions()}
    return "newer" if current is not None and current not in known else "behind"


def run_env(target_metadata: MetaData | None = None) -> None:
    """The body of every service's ``env.py``: run migrations online over asyncpg.

    ``target_metadata`` is the service's ``models.metadata``: what alembic compares the migrated
    schema with (``alembic check``, ``revision --autogenerate``, the drift test)."""
    url = context.config.get_main_option("sqlalchemy.url")

    def do_run(connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata, transaction_per_migration=True,
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
            await connection.commit()
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run())


def create_bus_tables() -> None:
    """Outbox (events waiting to be published) and inbox (events already applied)."""
    op.execute("""
        CREATE TABLE outbox (
            id          bigserial PRIMARY KEY,
            event_id    text        NOT NULL,
            event_type  text        NOT NULL,
            topic       text        NOT NULL,
            key         bytea       NOT NULL,
            value       bytea       NOT NULL,
            headers     bytea       NOT NULL,  -- JSON [[name, value], …], decoded by the relay
            created_at  timestamptz NOT NULL DEFAULT now()
        )""")
    # One NOTIFY per inserting statement wakes the relay; the payload is not needed.
    op.execute("""
        CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('outbox', ''); RETURN NULL; END $$""")
    op.execute("""
        CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
        FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()""")
    # CloudEvents: source + id identify an event. applied_at lets old entries be pruned.
    op.execute("""
        CREATE TABLE inbox (
            source      text        NOT NULL,
            event_id    text        NOT NULL,
            event_type  text        NOT NULL,
            applied_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, event_id)
        )""")
    op.execute("CREATE INDEX inbox_applied_at ON inbox (applied_at)")


def key_inbox_by_event_type() -> None:
    """Inbox key (source, event_type, event_id) instead of (source, event_id).

    A producer is authorised per topic (Kafka ACLs; the gateway's per-family scopes) and every
    event type belongs to one topic, so with the type in the key an event can only ever collide
    with events its own producer could have sent. Rows already there keep their meaning: each
    recorded its type.
    """
    op.execute("ALTER TABLE inbox DROP CONSTRAINT inbox_pkey, ADD PRIMARY KEY (source, event_type, event_id)")


def key_inbox_by_source_and_id() -> None:
    """Downgrade of :func:`key_inbox_by_event_type` (fails if two types share a source and id)."""
    op.execute("ALTER TABLE inbox DROP CONSTRAINT inbox_pkey, ADD PRIMARY KEY (source, event_id)")


def create_erased_customers() -> None:
    """The tombstone of erased customers (see crm_shared.erasure)."""
    op.execute("""
        CREATE TABLE erased_customers (
            customer_id text PRIMARY KEY,
            erased_at   timestamptz NOT NULL
        )""")


def drop_erased_customers() -> None:
    op.execute("DROP TABLE erased_customers")


def drop_bus_tables() -> None:
    op.execute("DROP TABLE inbox")
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION outbox_notify()")
    op.execute("DROP TABLE outbox")
