"""Background work of a service besides the consumer and the relay: scheduled jobs, metric snapshots.

Started in a service's ``resources`` (after the runtime, so the engine exists) and cancelled when
the service stops. A failing round is logged and tried again at the next interval: a database
restart must not end a scheduler for good.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from crm_shared.logging import get_logger

log = get_logger(__name__)


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
