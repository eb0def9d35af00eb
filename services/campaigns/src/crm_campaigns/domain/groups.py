"""Control groups and the global holdout: deterministic, stable, independent assignments.

A customer's group is a pure function of ids, so it needs no stored random state, is the same on
every rerun and on every replica, and can be recomputed at measurement time.

- The global holdout depends on the customer only (and a salt): a held-out customer receives no
  campaign at all, which measures the effect of the whole programme.
- The control group of a campaign depends on (campaign, customer): each campaign splits customers
  independently of the others, so the same customers are not always the controls.
- Shares are monotone: raising a share only moves customers into that group, never out of it.
"""

from __future__ import annotations

import hashlib
from typing import Literal

Group = Literal["treatment", "control", "holdout"]

_SEPARATOR = "\x1f"  # unit separator: ("ab", "c") and ("a", "bc") hash differently
_SCALE = float(1 << 64)


def unit_interval(*parts: str) -> float:
    """A number in [0, 1), uniform over distinct inputs and the same for equal ones: the first 8 bytes
    (big-endian) of SHA-256 of the UTF-8 ``parts`` joined by U+001F, divided by 2**64."""
    digest = hashlib.sha256(_SEPARATOR.join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign_group(campaign_id: str, customer_id: str, control_share: float, holdout_share: float = 0.0,
                 holdout_salt: str = "global") -> Group:
    """The customer's group in the campaign: "holdout" when ``unit_interval(holdout_salt, customer)`` is below
    ``holdout_share``, else "control" when ``unit_interval(campaign, customer)`` is below ``control_share``,
    else "treatment". Shares are fractions in [0, 1]."""
    for share in (control_share, holdout_share):
        if not 0.0 <= share <= 1.0:
            raise ValueError("shares must be between 0 and 1")
    if unit_interval(holdout_salt, customer_id) < holdout_share:
        return "holdout"
    if unit_interval(campaign_id, customer_id) < control_share:
        return "control"
    return "treatment"
