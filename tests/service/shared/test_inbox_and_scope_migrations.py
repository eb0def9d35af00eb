"""Migrations of issue 17 on a database that already holds data: the inbox keyed by event type
keeps every applied event recognised, and API keys with the old ``events:write`` keep only what
a tracker needs."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from crm_shared.devstack import drop_database, ensure_database, run_blocking
from crm_shared.migrations import upgrade

from tests.harness.infra import Database, database_url_for


@pytest.fixture
def empty_database(pg_server_url):
    name = f"t_migrate_{uuid.uuid4().hex[:8]}"
    run_blocking(ensure_database(pg_server_url, name))
    yield Database(database_url_for(pg_server_url, name))
    run_blocking(drop_database(pg_server_url, name))


def test_the_inbox_keeps_its_rows_and_is_keyed_by_type_after_the_migration(empty_database):
    db = empty_database
    upgrade("crm_loyalty:migrations", db.url, revision="0002")
    run_blocking(db.execute("INSERT INTO inbox (source, event_id, event_type) "
                            "VALUES ('shop/accounts', 'e-1', 'commerce.customer.registered')"))
    upgrade("crm_loyalty:migrations", db.url)
    # The applied event is still recognised; the same source and id of another type is not it.
    run_blocking(db.execute("INSERT INTO inbox (source, event_id, event_type) "
                            "VALUES ('shop/accounts', 'e-1', 'commerce.interaction.recorded')"))
    with pytest.raises(asyncpg.UniqueViolationError):
        run_blocking(db.execute("INSERT INTO inbox (source, event_id, event_type) "
                                "VALUES ('shop/accounts', 'e-1', 'commerce.customer.registered')"))
    assert run_blocking(db.fetchval("SELECT count(*) FROM inbox")) == 2


def test_api_keys_with_events_write_keep_only_interactions_write(empty_database):
    db = empty_database
    upgrade("crm_gateway:migrations", db.url, revision="0003")
    for key_id, scopes in (("a" * 16, ["events:write"]), ("b" * 16, ["events:write", "interactions:write",
                                                                      "profiles:read"]),
                           ("c" * 16, ["profiles:read"])):
        run_blocking(db.execute("INSERT INTO api_keys (key_id, client, secret_hash, scopes, created_by) "
                                "VALUES ($1, 'x', '\\x00', $2, 'sup-1')", key_id, scopes))
    upgrade("crm_gateway:migrations", db.url)
    rows = run_blocking(db.fetch("SELECT key_id, scopes FROM api_keys ORDER BY key_id"))
    assert [(r["key_id"][0], r["scopes"]) for r in rows] == [
        ("a", ["interactions:write"]), ("b", ["interactions:write", "profiles:read"]), ("c", ["profiles:read"])]
