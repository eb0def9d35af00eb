"""The event batches: each records the history the features need (orders, daily activity, tickets,
ratings) and then rescores the customers it touched in the same unit of work, so a score, its level
change and the ``crm.churn.risk.changed`` event are committed with the events that caused them and
never twice. Events about an erased customer are skipped (a score would rebuild a behavioural
profile of someone who asked to be forgotten); they still count as applied. Never commits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from crm_churn.usecases.scoring import Scorer, rescore

if TYPE_CHECKING:
    from crm_shared.uow import UnitOfWork

    from crm_churn.repository import ChurnRepository

    Uow = UnitOfWork[ChurnRepository]


@dataclass(frozen=True, slots=True)
class PaidOrder:
    order_id: str
    customer_id: str
    at: datetime
    currency: str
    total: Decimal
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class OrderChange:
    """A cancellation (``amount`` unused) or a refund of ``amount``."""
    order_id: str
    customer_id: str
    at: datetime
    amount: Decimal = Decimal(0)
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Interaction:
    customer_id: str
    at: datetime
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class TicketChange:
    ticket_id: str
    customer_id: str
    kind: str  # "unknown" when the event does not say (a ticket first seen through a later event)
    at: datetime
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Rating:
    ticket_id: str
    customer_id: str
    score: int
    at: datetime
    traceparent: str | None = None


Row = TypeVar("Row", PaidOrder, OrderChange, Interaction, TicketChange, Rating)
TICKET_CHANGES = ("opened", "resolved", "reopened", "breached")


def first_per(rows: Sequence[Row], key: Callable[[Row], str]) -> list[Row]:
    """One row per key, the first in partition order (a multi-row upsert may touch a row once)."""
    seen: dict[str, Row] = {}
    for row in rows:
        seen.setdefault(key(row), row)
    return list(seen.values())


async def _apply(uow: Uow, scorer: Scorer, rows: Sequence[Row],
                 record: Callable[[list[Row]], Awaitable[Any]]) -> None:
    erased = await uow.repo.erased_among(sorted({r.customer_id for r in rows}))
    kept = [r for r in rows if r.customer_id not in erased]
    if not kept:
        return
    await record(kept)
    await rescore(uow, scorer, [r.customer_id for r in kept], trigger="event", traceparent=kept[-1].traceparent)


async def orders_paid(uow: Uow, scorer: Scorer, orders: Sequence[PaidOrder]) -> None:
    async def record(kept: list[PaidOrder]) -> None:
        picked = first_per(kept, lambda o: o.order_id)
        await uow.repo.record_paid_orders([o.order_id for o in picked], [o.customer_id for o in picked],
                                          [o.at for o in picked], [o.currency for o in picked],
                                          [o.total for o in picked])
    await _apply(uow, scorer, orders, record)


async def orders_cancelled(uow: Uow, scorer: Scorer, orders: Sequence[OrderChange]) -> None:
    async def record(kept: list[OrderChange]) -> None:
        picked = first_per(kept, lambda o: o.order_id)
        await uow.repo.record_cancelled_orders([o.order_id for o in picked], [o.at for o in picked])
    await _apply(uow, scorer, orders, record)


async def orders_refunded(uow: Uow, scorer: Scorer, refunds: Sequence[OrderChange]) -> None:
    async def record(kept: list[OrderChange]) -> None:
        # Several refunds of one order in a batch add up; one statement may update a row once.
        amounts: Counter[str] = Counter()
        for refund in kept:
            amounts[refund.order_id] += refund.amount
        await uow.repo.record_refunds(list(amounts), list(amounts.values()))
    await _apply(uow, scorer, refunds, record)


async def interactions(uow: Uow, scorer: Scorer, seen: Sequence[Interaction]) -> None:
    async def record(kept: list[Interaction]) -> None:
        per_day: Counter[tuple[str, date]] = Counter((i.customer_id, i.at.astimezone(UTC).date()) for i in kept)
        await uow.repo.add_activity([k[0] for k in per_day], [k[1] for k in per_day], list(per_day.values()))
    await _apply(uow, scorer, seen, record)


async def tickets_changed(uow: Uow, scorer: Scorer, change: str, tickets: Sequence[TicketChange]) -> None:
    """``change``: opened, resolved (closed counts as resolved), reopened or breached (its SLA)."""
    if change not in TICKET_CHANGES:
        raise ValueError(f"unknown ticket change {change!r}")

    async def record(kept: list[TicketChange]) -> None:
        picked = first_per(kept, lambda t: t.ticket_id)
        await uow.repo.record_tickets(change, [t.ticket_id for t in picked], [t.customer_id for t in picked],
                                      [t.kind for t in picked], [t.at for t in picked])
    await _apply(uow, scorer, tickets, record)


async def ratings(uow: Uow, scorer: Scorer, submitted: Sequence[Rating]) -> None:
    async def record(kept: list[Rating]) -> None:
        picked = first_per(kept, lambda r: r.ticket_id)
        await uow.repo.record_ratings([r.ticket_id for r in picked], [r.customer_id for r in picked],
                                      [r.score for r in picked], [r.at for r in picked])
    await _apply(uow, scorer, submitted, record)
