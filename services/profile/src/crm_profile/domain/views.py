"""What a customer sees of their own data, beside what staff see. No I/O.

A customer gets everything the shop holds about them as a person (identity, consents, orders,
what they did), but not the shop's judgement of them nor its staff's working records: the churn
level and its history, the RFM and custom segments and the staff's tags are how the shop sorts
customers, and agents' internal notes and the log of who looked at the PII are written for
colleagues and auditors. Staff see everything.
"""

from __future__ import annotations

from typing import Any

# Profile fields a customer's own view leaves empty.
HIDDEN_PROFILE_FIELDS: dict[str, Any] = {"churn_level": None, "rfm": None, "segments": [], "tags": []}
# Sections of the data export a customer's own export leaves out.
HIDDEN_EXPORT_SECTIONS = ("notes", "pii_access_log")
# Timeline entries (by kind prefix) a customer's own export leaves out: churn warnings carry the level.
HIDDEN_TIMELINE_KINDS = ("churn.",)


def customer_timeline(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if not str(e.get("kind", "")).startswith(HIDDEN_TIMELINE_KINDS)]
