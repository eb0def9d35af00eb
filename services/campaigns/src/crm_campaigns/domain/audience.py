"""What an audience definition may say, beyond each filter's type: the rules across filters.

The filters themselves are those ``repository/audiences.py`` turns into SQL (its docstring lists
them); the request model (``schemas/audiences.py``) gives each its type and bounds. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The profile's RFM segment names (crm_profile.domain.segments.RFM_SEGMENTS): the projection
# stores them as "rfm:<name>" among a member's segments. Repeated here because a service never
# imports another's package; the event contract is what ties them.
RFM_SEGMENTS = ("champions", "loyal", "potential", "new", "at_risk", "cannot_lose", "hibernating", "lost")
CHURN_LEVELS = ("low", "medium", "high")
LOCALES = ("zh-CN", "en")

# (lower bound, upper bound) pairs that must not cross.
_RANGES = (("churn_score_min", "churn_score_max"), ("value_min", "value_max"), ("orders_min", "orders_max"))


class AudienceInvalid(ValueError):
    """The filters contradict each other: the audience would be empty by construction."""


def check_audience(definition: Mapping[str, Any]) -> None:
    """Raise :class:`AudienceInvalid` when filters contradict each other (a typo, not an intent)."""
    for low, high in _RANGES:
        if definition.get(low) is not None and definition.get(high) is not None \
                and definition[low] > definition[high]:
            raise AudienceInvalid(f"{low} is above {high}")
    both = set(definition.get("segments_all") or ()) & set(definition.get("segments_none") or ())
    if both:
        raise AudienceInvalid(f"segments both required and excluded: {', '.join(sorted(both))}")
    within, quiet = definition.get("last_order_within_days"), definition.get("no_order_for_days")
    if within is not None and quiet is not None and within <= quiet:
        raise AudienceInvalid("last_order_within_days must be above no_order_for_days, or no one can match both")
