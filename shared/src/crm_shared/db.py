"""Database helpers: the engine is built in the lifespan, never at import.

Unit of work: one transaction per command or event batch, committed explicitly; leaving the
``async with engine.connect()`` block without ``commit()`` rolls back. Repositories never commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from crm_shared.settings import ServiceSettings


def max_connections(settings: ServiceSettings) -> int:
    """The most connections a process opens: the pool's size plus as many again in overflow."""
    return settings.database_pool_size * 2


def create_engine(settings: ServiceSettings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=max_connections(settings) - settings.database_pool_size,
        # No ping per checkout: SQLAlchemy's asyncpg ping is a BEGIN and a ROLLBACK, two round
        # trips, a good share of a profile read (py-spy, docs/benchmarks.md). A connection broken by a database
        # restart fails its request instead; SQLAlchemy then renews the whole pool, the HTTP
        # answer is a 503 problem (problems.py) and consumers retry (is_transient).
        pool_pre_ping=False,
        # asyncpg's own prepared-statement cache makes the hot statements cheap.
        connect_args={"server_settings": {"application_name": f"crm-{settings.service_name}"}},
    )


async def _connection(request: Request) -> AsyncIterator[AsyncConnection]:
    runtime = request.app.state.runtime
    async with runtime.db_gate, runtime.engine.connect() as conn:
        yield conn


DbConnection = Annotated[AsyncConnection, Depends(_connection)]
"""A connection for one request; its transaction rolls back unless the route commits."""


async def _read_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    runtime = request.app.state.runtime
    async with runtime.db_gate, runtime.engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


def request_gate(settings: ServiceSettings) -> asyncio.Semaphore:
    """First come, first served for requests waiting for a database connection.

    SQLAlchemy's async pool lets a newly arrived request take a returned connection before one
    that has been waiting (the waiter goes back to the end of the queue), so under overload a
    few requests waited seconds while most were quick (100 clients redeeming points in
    bench/loyalty.py; figures in docs/benchmarks.md). asyncio.Semaphore queues its waiters in order.
    """
    return asyncio.Semaphore(max_connections(settings))


DbReadConnection = Annotated[AsyncConnection, Depends(_read_connection)]
"""A connection for a read that needs one statement: no BEGIN and ROLLBACK around it."""


_TRANSIENT_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "53300",  # too_many_connections
    "57P01", "57P02", "57P03",  # admin/crash shutdown, cannot connect now
    "08000", "08003", "08006", "08001", "08004",  # connection exceptions
}


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same work later can succeed (database down, deadlock, network).

    A transient failure is retried with backoff and the Kafka offset is not committed; anything
    else is a defect in the data or the code, and the event is dead-lettered.
    """
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig or exc
        cause = getattr(exc, "__cause__", None)
        if cause is not None and is_transient(cause):
            return True
    if isinstance(exc, (OSError, ConnectionError, TimeoutError, asyncpg.exceptions.ConnectionDoesNotExistError,
                        asyncpg.exceptions.InterfaceError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return sqlstate in _TRANSIENT_SQLSTATES
