"""Background work of a service besides the consumer and the relay: scheduled jobs, metric snapshots.

A service declares its periodic work in ``jobs.py`` as a list of :class:`PeriodicJob` (the
``jobs`` of its ``ServiceSpec``); ``build_app`` starts them once the runtime and the service's
resources are open, and cancels them when the service stops. A failing round is logged and tried
again at the next interval: a database restart must not end a scheduler for good.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from crm_shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    """One periodic task: ``work`` after ``first_delay_s``, then every ``interval_s``."""

    what: str  # for the log
    work: Callable[[], Awaitable[Any]]
    interval_s: float
    first_delay_s: float = 0.0


def running(jobs: Sequence[PeriodicJob]) -> AbstractAsyncContextManager[None]:
    """:func:`background` for declared jobs."""
    return background(*(run_periodically(job.work, interval_s=job.interval_s, first_delay_s=job.first_delay_s,
                                         what=job.what) for job in jobs))


async def run_periodically(work: Callable[[], Awaitable[Any]], *, interval_s: float, first_delay_s: float = 0.0,
                           what: str) -> None:
    """Run ``work`` after ``first_delay_s``, then every ``interval_s``, until cancelled."""
    await asyncio.sleep(first_delay_s)
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background work failed; retrying at the next interval", task=what)
        await asyncio.sleep(interval_s)


@asynccontextmanager
async def background(*work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run coroutines as tasks for the duration of the block; cancel and await them on exit."""
    tasks = [asyncio.create_task(w) for w in work]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
