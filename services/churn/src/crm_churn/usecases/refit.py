"""Refitting the model on the shop's own history, then rescoring everybody (the recipe, with its
time-split backtest, is in ``domain/fitting.py``).

One refit at a time across replicas (a session-wide advisory lock, held on a read-only unit of
work); the history is loaded from one snapshot, the CPU work runs in a worker thread so the service
keeps answering and its consumer keeps its group membership. Works in several transactions, so it
takes a callable opening units of work and commits each one itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from crm_shared.errors import ConflictError, RuleViolation
from crm_shared.logging import get_logger

from crm_churn.domain.fitting import churned, fit
from crm_churn.usecases.scoring import Scorer, rescore_everybody

if TYPE_CHECKING:
    from crm_shared.uow import UnitOfWork

    from crm_churn.repository import ChurnRepository

    # open_uow() for a transaction, open_uow(read_only=True) for the lock's connection.
    OpenUow = Callable[..., AbstractAsyncContextManager[UnitOfWork[ChurnRepository]]]

log = get_logger(__name__)


class RefitRunning(ConflictError):
    def __init__(self) -> None:
        super().__init__("a refit is already running; try again when it has finished")


class NotEnoughHistory(RuleViolation):
    default_code = "not-enough-history"
    default_title = "Not enough history"

    def __init__(self, customers: int, needed: int) -> None:
        super().__init__(f"{customers} customers have a paid order; a fit needs at least {needed}",
                         customers=customers, needed=needed)


async def refit(open_uow: OpenUow, scorer: Scorer, *, horizon_days: float, min_customers: int, actor: str,
                observe: Callable[[float], Any] | None = None) -> dict[str, Any]:
    """Fit, store and put in force a new model, then rescore every customer. Returns its report.
    ``observe`` receives the fit's duration (history loading included, rescoring not)."""
    async with open_uow(read_only=True) as lock:
        if not await lock.repo.try_refit_lock():
            raise RefitRunning()
        try:
            return await _refit(open_uow, scorer, horizon_days, min_customers, actor, observe)
        finally:
            await lock.repo.release_refit_lock()


async def scheduled_refit(open_uow: OpenUow, scorer: Scorer, *, horizon_days: float, min_customers: int,
                          observe: Callable[[float], Any] | None = None) -> None:
    """The periodic refit: skipped (and logged) while another runs or the history is too short."""
    try:
        await refit(open_uow, scorer, horizon_days=horizon_days, min_customers=min_customers,
                    actor="system:schedule", observe=observe)
    except (RefitRunning, NotEnoughHistory) as skipped:
        log.info("scheduled refit skipped", reason=skipped.detail)


async def _refit(open_uow: OpenUow, scorer: Scorer, horizon_days: float, min_customers: int, actor: str,
                 observe: Callable[[float], Any] | None) -> dict[str, Any]:
    started = time.perf_counter()
    now = datetime.now(UTC)
    horizon = timedelta(days=horizon_days)
    train_cutoff, test_cutoff = now - horizon, now - 2 * horizon
    async with open_uow() as db:
        await db.repo.repeatable_read()  # one snapshot for all windows
        current = await db.repo.load_history(now)
        if len(current) < min_customers:
            raise NotEnoughHistory(len(current), min_customers)
        at_train = await db.repo.load_history(train_cutoff)
        bought_after_train = await db.repo.purchasers(train_cutoff, now)
        at_test = await db.repo.load_history(test_cutoff)
        bought_after_test = await db.repo.purchasers(test_cutoff, train_cutoff)
    loaded = time.perf_counter() - started
    version = f"churn-{now.strftime('%Y%m%dT%H%M%S')}-{now.microsecond:06d}"
    model, report = await asyncio.to_thread(
        fit, version, current, at_train, churned(at_train, bought_after_train),
        at_test, churned(at_test, bought_after_test), horizon_days=horizon_days)
    report.update({"trained_at": now.isoformat(), "horizon_days": horizon_days,
                   "cutoffs": {"train": train_cutoff.isoformat(), "backtest": test_cutoff.isoformat()},
                   "customers": len(current)})
    fitted = time.perf_counter() - started
    async with open_uow() as uow:
        await uow.repo.add_model(version=version, kind=model.kind, params=model.params(), report=report, at=now,
                                 duration_s=fitted, actor=actor)
        await uow.commit()
    scorer.store.put(model)
    if observe is not None:
        observe(fitted)
    scored, changes = await rescore_everybody(open_uow, scorer, model)
    total = time.perf_counter() - started
    log.info("churn model refitted", version=version, kind=model.kind, customers=len(current),
             load_s=round(loaded, 2), fit_s=round(fitted - loaded, 2), rescore_s=round(total - fitted, 2),
             level_changes=changes, auc=report["holdout"].get("auc") if report["holdout"] else None)
    return {"version": version, "kind": model.kind, "params": model.params(), "report": report,
            "duration_s": round(fitted, 3), "rescored": scored, "level_changes": changes,
            "rescore_s": round(total - fitted, 3)}
