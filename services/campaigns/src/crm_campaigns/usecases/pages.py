"""Cursors of the newest-first lists (campaigns, a campaign's messages): opaque to the caller, the
(created_at, id) of the last row of a page, so that a page never repeats or skips a row when rows
are added meanwhile."""

from __future__ import annotations

import base64
from datetime import datetime

from crm_shared.errors import RuleViolation


def cursor_of(created_at: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{key}".encode()).decode().rstrip("=")


def after_of(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, key = raw.split("|", 1)
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise RuleViolation("the cursor is not one this service gave", code="invalid-cursor") from None
    if moment.tzinfo is None:
        raise RuleViolation("the cursor is not one this service gave", code="invalid-cursor")
    return moment, key
