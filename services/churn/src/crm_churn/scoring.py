"""Scoring customers with the current model: after their events (in the consumer's transaction)
and everybody after a refit (in chunks, one transaction each)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import stamina
from crm_shared.db import is_transient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from crm_churn.domain.model import ChurnModel
from crm_churn.repository import ModelStore, customers_with_orders, history_changed, load_history, write_scores
from crm_churn.settings import ChurnSettings

_FORGET = text("DELETE FROM churn_scores WHERE customer_id = ANY(CAST(:ids AS text[]))")


class Scorer:
    def __init__(self, store: ModelStore, settings: ChurnSettings) -> None:
        self.store = store
        self._settings = settings
        # Customers scored, by what caused it; served as a counter by metrics.py.
        self.scored: Counter[str] = Counter()

    async def rescore(self, tx: AsyncConnection, customer_ids: Sequence[str], *, trigger: str,
                      model: ChurnModel | None = None, traceparent: str | None = None) -> tuple[int, int]:
        """Score these customers as of now in ``tx`` (customers without a paid order are not scored).
        With ``trigger="event"`` their history has just changed in ``tx`` and is marked so first."""
        if not customer_ids:
            return 0, 0
        if trigger == "event":
            await history_changed(tx, customer_ids)
        model = model or await self.store.current(tx)
        now = datetime.now(UTC)
        wanted = sorted(set(customer_ids))
        history = await load_history(tx, now, wanted)
        if len(history) < len(wanted):
            # No paid order (left) — a prospect, or their only order was cancelled: no score.
            await tx.execute(_FORGET, {"ids": sorted(set(wanted) - set(history.customer_ids))})
        scored, changed = await write_scores(tx, model, history, at=now,
                                             medium_at=self._settings.churn_level_medium,
                                             high_at=self._settings.churn_level_high, traceparent=traceparent)
        self.scored[trigger] += scored
        return scored, changed

    async def rescore_everybody(self, engine: AsyncEngine, model: ChurnModel) -> tuple[int, int]:
        """Every customer with a paid order, ``rescore_chunk`` per transaction. Returns (scored, changes)."""
        async with engine.connect() as db:
            everybody = await customers_with_orders(db)
        total = changes = 0
        chunk = self._settings.rescore_chunk
        for start in range(0, len(everybody), chunk):
            # A chunk and a consumer batch lock score rows in different orders; PostgreSQL breaks
            # such a deadlock by failing one of them, and the chunk is simply run again.
            async for attempt in stamina.retry_context(on=is_transient, attempts=5, wait_initial=0.05):
                with attempt:
                    async with engine.connect() as tx:
                        scored, changed = await self.rescore(tx, everybody[start:start + chunk], trigger="refit",
                                                             model=model)
                        await tx.commit()
            total += scored
            changes += changed
        return total, changes
