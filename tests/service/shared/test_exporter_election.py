"""The exporter election on the real PostgreSQL, with an injected clock: one holder of the lock, a
new holder that waits out the old holder's lease, and a lease that starts when the question was
sent (crm_shared.metrics.ExporterElection)."""

from __future__ import annotations

from crm_shared.metrics import ExporterElection
from crm_shared.settings import ServiceSettings

LEASE = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_one_holder_a_new_holder_waits_a_lease_and_a_cut_session_ends_the_lease(make_database):
    database = make_database("tickets")
    clock = Clock()
    first, second = (ExporterElection(database.dsn, lease_s=LEASE, clock=clock) for _ in range(2))
    try:
        assert await first.lease() is None  # just acquired: an earlier holder may still be serving
        assert await second.lease() is None  # the lock is taken
        clock.now += LEASE
        assert await first.lease() == clock.now + LEASE  # held for a lease: it may serve one more
        assert await second.lease() is None
        # The holder's session is cut: it stops at its next question, and the other takes the lock.
        held_by = await database.fetchval("""
            SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())""")
        assert await database.fetchval("SELECT pg_terminate_backend($1, 5000)", held_by)  # waits until it is gone
        clock.now += 10
        assert await second.lease() is None  # acquired now; the first may serve until 1000 + 2 × LEASE
        assert await first.lease() is None  # its session is gone, and the lock is the other's now
        clock.now += LEASE - 1
        assert await second.lease() is None
        assert await first.lease() is None
        clock.now += 1
        assert await second.lease() == clock.now + LEASE
        assert await first.lease() is None
        # Closing gives the lock back at once (a replica that stops).
        await second.close()
        assert await first.lease() is None
        clock.now += LEASE
        assert await first.lease() == clock.now + LEASE
    finally:
        await first.close()
        await second.close()


def test_the_lock_session_uses_database_session_url_when_set_else_database_url():
    direct = ServiceSettings(service_name="tickets", database_url="postgresql://u@db:5432/crm_tickets")
    assert direct.session_dsn == "postgresql://u@db:5432/crm_tickets"
    pooled = ServiceSettings(service_name="tickets", database_url="postgresql://u@pgbouncer:6432/crm_tickets",
                             database_session_url="postgresql+asyncpg://u@db:5432/crm_tickets")
    assert pooled.session_dsn == "postgresql://u@db:5432/crm_tickets"
    assert pooled.database_dsn == "postgresql://u@pgbouncer:6432/crm_tickets"
