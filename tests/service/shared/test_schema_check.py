"""A service refuses to start on a database its migrations have not reached (instead of failing
every event on a missing table, which is not transient, and dead-lettering them)."""

from __future__ import annotations

import subprocess
import sys
import uuid

from crm_shared.devstack import drop_database, ensure_database, free_port, run_blocking
from crm_shared.migrations import schema_state, upgrade

from tests.harness.infra import Database, database_url_for, service_env

LOYALTY = "crm_loyalty:migrations"


def test_schema_state_compares_the_database_revision_with_the_code():
    from alembic.script import ScriptDirectory
    from crm_shared.migrations import alembic_config

    script = ScriptDirectory.from_config(alembic_config(LOYALTY, "postgresql://unused"))
    (head,) = script.get_heads()
    assert schema_state(LOYALTY, head) == "ok"
    assert schema_state(LOYALTY, "0001") == "behind"
    assert schema_state(LOYALTY, None) == "behind"
    # A revision this release does not know: a later release migrated the database (expand/contract).
    assert schema_state(LOYALTY, "9999_from_the_future") == "newer"


def test_a_service_on_an_unmigrated_database_exits_saying_what_to_run(pg_server_url, broker, tmp_path):
    name = f"t_unmigrated_{uuid.uuid4().hex[:8]}"
    run_blocking(ensure_database(pg_server_url, name))
    try:
        url = database_url_for(pg_server_url, name)
        upgrade(LOYALTY, url, revision="0001")  # half-way: the bus tables only
        env = service_env("loyalty", database=Database(url), broker=broker, port=free_port())
        result = subprocess.run([sys.executable, "-m", "crm_shared.cli", "serve", "loyalty"], env=env,
                                capture_output=True, text=True, timeout=90)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "is at revision 0001, behind this release: run `crm migrate loyalty` first" in output
    finally:
        run_blocking(drop_database(pg_server_url, name))
