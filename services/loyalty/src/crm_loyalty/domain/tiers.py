"""Tier decisions: upgrades at once, downgrades only after a grace period. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from crm_loyalty.domain.programme import Tiers


@dataclass(frozen=True, slots=True)
class TierDecision:
    tier: str
    below_tier_since: datetime | None
    changed: bool
    upgraded: bool


def decide(tiers: Tiers, *, current: str, below_tier_since: datetime | None, spend: Decimal, orders: int,
           at: datetime, allow_downgrade: bool) -> TierDecision:
    """Where a member stands after a paid order, a refund, or the daily job.

    Qualifying for a higher tier upgrades at once. Falling below the current tier starts a grace
    period (``downgrade_grace_days``); only the daily job (``allow_downgrade``) downgrades, and only
    once the member has stayed below for the whole grace period. Qualifying again ends the grace.
    """
    qualified = tiers.qualified(spend, orders)
    current_rank, qualified_rank = tiers.rank(current), tiers.rank(qualified.name)
    if qualified_rank > current_rank or (qualified_rank == current_rank and qualified.name != current):
        return TierDecision(qualified.name, None, True, qualified_rank > current_rank)
    if qualified_rank == current_rank:
        return TierDecision(current, None, False, False)
    since = below_tier_since or at
    if allow_downgrade and at - since >= timedelta(days=tiers.downgrade_grace_days):
        return TierDecision(qualified.name, None, True, False)
    return TierDecision(current, since, False, False)
