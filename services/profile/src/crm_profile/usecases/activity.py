"""The batches of other services' events the archive keeps: orders, interactions, points, tickets,
tier and churn level. After a batch changed what custom segments look at, those segments are
re-evaluated for its customers in the same transaction."""

from __future__ import annotations

from crm_shared.uow import UnitOfWork

from crm_profile.domain.records import CategoryView, OrderFact, RefundRequest, TimelineEntry
from crm_profile.repository import ProfileRepository
from crm_profile.usecases.identity import announce_updates
from crm_profile.usecases.segments import refresh_segments

Uow = UnitOfWork[ProfileRepository]


def _customers(items) -> list[str]:
    return sorted({item.customer_id for item in items})


async def orders_placed(uow: Uow, orders: list[OrderFact], entries: list[TimelineEntry]) -> None:
    await uow.repo.record_placed_orders(orders)
    await uow.repo.add_to_timeline(entries)


async def orders_paid(uow: Uow, orders: list[OrderFact], entries: list[TimelineEntry], *, currency: str,
                      traceparents: dict[str, str | None]) -> None:
    """Each order counts once whatever the event id; the statistics grow by what was really new."""
    stats = await uow.repo.apply_paid_orders(orders)
    await uow.repo.add_to_timeline(entries)
    await announce_updates(uow, stats, changed=["orders"], traceparents=traceparents)
    await refresh_segments(uow, currency, _customers(orders))


async def orders_completed(uow: Uow, orders: list[OrderFact], entries: list[TimelineEntry]) -> None:
    await uow.repo.record_completed_orders(orders)
    await uow.repo.add_to_timeline(entries)


def refund_requests(refunds: list[RefundRequest]) -> list[RefundRequest]:
    """One request per order: the amounts of several refunds in one batch add up (the repository
    caps them at what is left of the order); a cancellation anywhere in the batch cancels."""
    merged: dict[str, RefundRequest] = {}
    for r in refunds:
        seen = merged.get(r.order_id)
        merged[r.order_id] = r if seen is None else RefundRequest(
            r.order_id, seen.amount + r.amount, max(seen.at, r.at), seen.cancelled or r.cancelled)
    return list(merged.values())


async def orders_refunded(uow: Uow, refunds: list[RefundRequest], entries: list[TimelineEntry], *,
                          currency: str, traceparents: dict[str, str | None]) -> None:
    """Refunds and cancellations: capped at what is left of each order, so net spend never goes below zero."""
    stats = await uow.repo.apply_refunds(refund_requests(refunds))
    await uow.repo.add_to_timeline(entries)
    await announce_updates(uow, stats, changed=["orders"], traceparents=traceparents)
    await refresh_segments(uow, currency, _customers(entries))


def category_views(entries: list[TimelineEntry]) -> list[CategoryView]:
    """Product views with a category feed the favourite categories, next to purchases."""
    return [CategoryView(e.customer_id, e.details["category"][:200], e.occurred_at) for e in entries
            if e.kind == "interaction.product_view" and isinstance(e.details.get("category"), str)
            and e.details["category"].strip()]


async def interactions_recorded(uow: Uow, entries: list[TimelineEntry], *, currency: str) -> None:
    await uow.repo.add_to_timeline(entries)
    await uow.repo.count_category_views(category_views(entries))
    await refresh_segments(uow, currency, _customers(entries))


async def levels_changed(uow: Uow, column: str, latest: dict[str, str], entries: list[TimelineEntry], *,
                         currency: str) -> None:
    """Tier (``tier``) or churn level (``churn_level``): owned by the loyalty and churn services, the
    profile shows a copy; ``latest`` is the last level per customer in partition order."""
    await uow.repo.copy_levels(column, latest)
    await uow.repo.add_to_timeline(entries)
    await refresh_segments(uow, currency, _customers(entries))


async def add_to_timeline(uow: Uow, entries: list[TimelineEntry]) -> None:
    """Points movements, tickets, SLA warnings and ratings: on the agent's timeline only."""
    await uow.repo.add_to_timeline(entries)
