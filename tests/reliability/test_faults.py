"""Fault injection: profile, loyalty and churn (every consumer of commerce.orders) under SIGKILL, a
crash between the commits, a PostgreSQL restart and a paused broker, with duplicated, reordered and
poison input; the end state must equal the fault-free expectation computed from the input
(tests/reliability/faults.py).

The bounded runs (one fault kind each) are in ``make test``; the 50,000-order run with every fault,
several times, is ``make soak`` (``-m soak``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from crm_shared.devstack import EmbeddedPostgres, discover_services, ensure_database, free_port, run_blocking
from crm_shared.migrations import upgrade

from tests.harness.infra import Database, database_url_for
from tests.reliability.faults import SERVICES, Rig, run_faulty

BOUNDED_ORDERS = 6_000
BOUNDED_SERVICES = SERVICES  # profile, loyalty and churn in the bounded runs as in the soak
SOAK_ORDERS = 50_000


@pytest.fixture
def private_postgres(tmp_path) -> Iterator[tuple[EmbeddedPostgres, dict[str, Database]]]:
    """A PostgreSQL of this test alone (the session's is shared), with a migrated database per service."""
    server = EmbeddedPostgres(tmp_path / "pg" / "data", free_port(), fast=True).start()
    try:
        specs = discover_services()
        databases = {}
        for service in SERVICES:
            name = f"faults_{service}"
            run_blocking(ensure_database(server.admin_url, name))
            url = database_url_for(server.admin_url, name)
            upgrade(specs[service].migrations, url)
            databases[service] = Database(url)
        yield server, databases
    finally:
        server.stop()


def _rig(broker, start_service, databases, postgres=None) -> Rig:
    return Rig(broker=broker, databases=databases, start_service=start_service, postgres=postgres)


async def test_sigkill_mid_run_and_between_the_commits(broker, make_database, start_service):
    """Each service SIGKILLs itself after a database commit, before the offset commit; then each is killed."""
    rig = _rig(broker, start_service, {s: make_database(s) for s in BOUNDED_SERVICES})
    await run_faulty(rig, orders=BOUNDED_ORDERS,
                     faults=[*(f"commit_gap:{s}" for s in BOUNDED_SERVICES), *(f"kill:{s}" for s in BOUNDED_SERVICES)])


async def test_postgres_restart_then_broker_paused_for_10_s(broker, private_postgres, start_service):
    if broker.process is None:
        pytest.skip("an external Kafka cannot be paused")
    server, databases = private_postgres
    rig = _rig(broker, start_service, {s: databases[s] for s in BOUNDED_SERVICES}, server)
    await run_faulty(rig, orders=BOUNDED_ORDERS, faults=["pg_restart", "broker_pause"])


@pytest.fixture
def soak_only(request) -> None:
    """Skip unless ``-m soak`` selected the test (before any other fixture starts something)."""
    markexpr = request.config.getoption("markexpr") or ""
    if "soak" not in markexpr or "not soak" in markexpr:
        pytest.skip("50,000 orders: only under `make soak` (-m soak)")


@pytest.mark.soak
@pytest.mark.timeout(2400)
async def test_soak_every_fault_several_times(soak_only, broker, private_postgres, start_service):
    if broker.process is None:
        pytest.skip("an external Kafka cannot be paused")
    server, databases = private_postgres
    rig = _rig(broker, start_service, databases, server)
    await run_faulty(rig, orders=SOAK_ORDERS, settle_timeout_s=900, faults=[
        "kill:profile", "kill:loyalty", "kill:churn", "commit_gap:profile", "pg_restart", "kill:profile",
        "broker_pause", "kill:loyalty", "commit_gap:loyalty", "kill:churn", "kill:profile", "kill:loyalty",
        "commit_gap:churn", "kill:churn"])
