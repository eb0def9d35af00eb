"""What the profile's routes share: the routers, the units of work, the caller's resources, cursors."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import orjson
from crm_shared.auth import STAFF, SUPERVISOR, Identity, Role  # noqa: F401  (STAFF, SUPERVISOR: for the route modules)
from crm_shared.problems import PROBLEM_RESPONSE as PROBLEM  # noqa: F401  (for the route modules)
from crm_shared.problems import Problem
from crm_shared.uow import uow_dependency
from fastapi import APIRouter, Path, Request

from crm_profile.repository import ProfileRepository

router = APIRouter(prefix="/v1/profiles", tags=["profiles"])
audit_router = APIRouter(prefix="/v1/audit", tags=["audit"])
segments_router = APIRouter(prefix="/v1/segments", tags=["segments"])

Uow = uow_dependency(ProfileRepository)
ReadUow = uow_dependency(ProfileRepository, read_only=True)

CustomerIdPath = Path(min_length=1, max_length=100)
BIGINT_MAX = 2**63 - 1  # ids in cursors are PostgreSQL bigints; larger ones are not ours


def resources(request: Request) -> Any:
    """app.py's ProfileResources: the PII vault, the phone region, the RFM currency, the metrics."""
    return request.app.state.resources


def may_see_pii(identity: Identity) -> bool:
    """Supervisors; agents and integrations whose token carries the ``pii:read`` scope."""
    return identity.role is Role.SUPERVISOR or (
        identity.role in (Role.AGENT, Role.SERVICE) and "pii:read" in identity.scopes)


def as_json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def encode_cursor(at: datetime, key: object) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{key}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, _, key = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(at), key
    except (ValueError, UnicodeDecodeError):
        raise Problem(422, "Invalid request", "cursor is not one this API gave out") from None
