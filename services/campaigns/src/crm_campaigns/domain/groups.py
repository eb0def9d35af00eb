"""Placeholder until the domain work lands (same interface)."""

from __future__ import annotations

import hashlib


def unit_interval(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_group(campaign_id: str, customer_id: str, control_share: float, holdout_share: float = 0.0,
                 holdout_salt: str = "global") -> str:
    if unit_interval(holdout_salt, customer_id) < holdout_share:
        return "holdout"
    return "control" if unit_interval(campaign_id, customer_id) < control_share else "treatment"
