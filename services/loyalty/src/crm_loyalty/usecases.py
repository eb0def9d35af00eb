"""Loyalty use cases: the rules shared by event handlers, merges and periodic jobs.

Being built up (issue 18): rules move here out of handlers.py, jobs.py and api.py; SQL stays in
repository.py. Callers own the transaction (nothing here commits).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from crm_loyalty.domain.events import notification, tier_changed
from crm_loyalty.domain.ledger import Lot
from crm_loyalty.domain.programme import Programme
from crm_loyalty.domain.tiers import decide
from crm_loyalty.repository import Member, Spent, record_given_back


def apply_tier(member: Member, programme: Programme, spend: Decimal, orders: int, at: datetime, *,
               allow_downgrade: bool) -> None:
    """Re-evaluate a member's tier and queue the event (and an upgrade note) when it changes."""
    if member.below_tier_since is None and programme.tiers.qualified(spend, orders).name == member.tier:
        return  # the usual case on a paid order: still exactly where they are
    decision = decide(programme.tiers, current=member.tier, below_tier_since=member.below_tier_since,
                      spend=spend, orders=orders, at=at, allow_downgrade=allow_downgrade)
    member.below_tier_since = decision.below_tier_since
    if decision.changed:
        member.events.append(tier_changed(member.customer_id, member.tier, decision.tier, at, member.traceparent))
        if decision.upgraded and member.erased_at is None:  # no messages to someone erased
            member.events.append(notification(member.customer_id, "tier_upgrade",
                                              {"old_tier": member.tier, "new_tier": decision.tier}, at,
                                              member.traceparent))
        member.tier, member.tier_since = decision.tier, at


async def give_back_spent(tx: AsyncConnection, member: Member, spent: Spent, lots: dict[int, Lot], points: int, *,
                          at: datetime, expiry_months: int, reason: str, event_id: str | None = None,
                          void_reason: str | None = None) -> None:
    """Give ``points`` of a redemption back into the lots they came from (voiding it with a reason)."""
    restored = member.book.give_back(
        [(lots[lot_id], left) for lot_id, left in spent.lots if lot_id in lots and left > 0], points, at=at,
        expiry_months=expiry_months, reason=reason, order_id=spent.order_id, redemption_id=spent.redemption_id,
        event_id=event_id)
    await record_given_back(tx, spent, points, restored, void_reason=void_reason, at=at)
