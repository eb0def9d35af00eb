"""Scoring customers with the current model: after their events (in the consumer's transaction)
and everybody after a refit (in chunks, one transaction each)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import stamina
from crm_shared.db import is_transient
from crm_shared.uow import UnitOfWork

from crm_churn.domain.events import risk_changed
from crm_churn.domain.model import ChurnModel, History, levels, prior_model

if TYPE_CHECKING:
    from crm_churn.repository import ChurnRepository

    Uow = UnitOfWork[ChurnRepository]
    OpenUow = Callable[[], AbstractAsyncContextManager[Uow]]

# Above this many customers, scoring runs in a worker thread (a refit's chunk, not an event batch).
OFF_LOOP_ROWS = 2000


class ModelStore:
    """The current model, read from the models table at most once a second per process: a refit on
    one replica reaches the others within a second; before the first refit it is the prior."""

    MAX_AGE_S = 1.0

    def __init__(self, horizon_days: float) -> None:
        self._model = prior_model(horizon_days)
        self._checked_at = 0.0

    def put(self, model: ChurnModel) -> None:
        self._model = model
        self._checked_at = time.monotonic()

    async def current(self, uow: Uow) -> ChurnModel:
        if time.monotonic() - self._checked_at < self.MAX_AGE_S:
            return self._model
        latest = await uow.repo.latest_model_version()
        if latest is not None and latest != self._model.version:
            kind, params = await uow.repo.model_params(latest)
            self._model = ChurnModel.from_params(latest, kind, params)
        self._checked_at = time.monotonic()
        return self._model


class Scorer:
    """What scoring needs across calls: the model in force and the levels' thresholds; counts the
    customers scored by this process, by what caused it (served as a counter by metrics.py)."""

    def __init__(self, store: ModelStore, *, medium_at: float, high_at: float, chunk: int = 1000) -> None:
        self.store = store
        self.medium_at = medium_at
        self.high_at = high_at
        self.chunk = chunk
        self.scored: Counter[str] = Counter()


async def write_scores(uow: Uow, model: ChurnModel, history: History, *, at: datetime, medium_at: float,
                       high_at: float, traceparent: str | None = None) -> tuple[int, int]:
    """Score ``history`` with ``model``, store the scores and publish ``crm.churn.risk.changed`` for
    each customer whose level changed. Returns (scored, level changes)."""
    if len(history) == 0:
        return 0, 0
    scores = await asyncio.to_thread(model.score, history) if len(history) > OFF_LOOP_ROWS else model.score(history)
    level = levels(scores.score, medium_at, high_at)
    at_risk = scores.score * history.value_12m
    written = await uow.repo.upsert_scores(
        ids=history.customer_ids, scores=scores.score.tolist(), levels=level, p_alive=scores.p_alive.tolist(),
        expected=scores.expected_orders_90d.tolist(), one_time=scores.one_time_buyer.tolist(),
        value=history.value_12m.tolist(), at_risk=at_risk.tolist(), currency=history.currency,
        reasons=scores.reasons, indicators=history.indicators_of(), history_versions=history.history_version,
        version=model.version, at=at)
    index = {customer_id: i for i, customer_id in enumerate(history.customer_ids)}
    events = []
    for customer_id, new_level, previous_level in written:
        if previous_level == new_level:
            continue
        i = index[customer_id]
        events.append(risk_changed(customer_id, previous_level, new_level, float(scores.score[i]),
                                   scores.reasons[i], model.version, at, traceparent))
    await uow.publish(events)
    return len(written), len(events)


async def rescore(uow: Uow, scorer: Scorer, customer_ids: Sequence[str], *, trigger: str,
                  model: ChurnModel | None = None, traceparent: str | None = None) -> tuple[int, int]:
    """Score these customers as of now (customers without a paid order are not scored). With
    ``trigger="event"`` their history has just changed in this unit of work and is marked so first."""
    if not customer_ids:
        return 0, 0
    if trigger == "event":
        await uow.repo.history_changed(customer_ids)
    model = model or await scorer.store.current(uow)
    now = datetime.now(UTC)
    wanted = sorted(set(customer_ids))
    history = await uow.repo.load_history(now, wanted)
    if len(history) < len(wanted):
        # No paid order (left) — a prospect, or their only order was cancelled: no score.
        await uow.repo.forget_scores(sorted(set(wanted) - set(history.customer_ids)))
    scored, changed = await write_scores(uow, model, history, at=now, medium_at=scorer.medium_at,
                                         high_at=scorer.high_at, traceparent=traceparent)
    scorer.scored[trigger] += scored
    return scored, changed


async def rescore_everybody(open_uow: OpenUow, scorer: Scorer, model: ChurnModel) -> tuple[int, int]:
    """Every customer with a paid order, ``scorer.chunk`` per unit of work, each committed here.
    Returns (scored, level changes)."""
    async with open_uow() as uow:
        everybody = await uow.repo.customers_with_orders()
    total = changes = 0
    for start in range(0, len(everybody), scorer.chunk):
        # A chunk and a consumer batch lock score rows in different orders; PostgreSQL breaks
        # such a deadlock by failing one of them, and the chunk is simply run again.
        async for attempt in stamina.retry_context(on=is_transient, attempts=5, wait_initial=0.05):
            with attempt:
                async with open_uow() as uow:
                    scored, changed = await rescore(uow, scorer, everybody[start:start + scorer.chunk],
                                                    trigger="refit", model=model)
                    await uow.commit()
        total += scored
        changes += changed
    return total, changes
