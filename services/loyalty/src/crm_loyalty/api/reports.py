"""Reports of the loyalty service (supervisors)."""

from __future__ import annotations

from crm_shared.auth import SUPERVISOR, CurrentIdentity
from fastapi import APIRouter, Request

from crm_loyalty.api.common import ReadUow, programme_store
from crm_loyalty.schemas.accounts import LiabilityRead
from crm_loyalty.usecases import reports

router = APIRouter(prefix="/v1/loyalty/reports", tags=["loyalty"])


@router.get("/liability", response_model=LiabilityRead)
async def get_liability(request: Request, uow: ReadUow, identity: CurrentIdentity) -> LiabilityRead:
    """What the shop owes its members now (supervisors): the points outstanding and their money
    value per currency, the rewards redeemed but not yet delivered, and the coupons outstanding with
    their face value. The same figures are exported as metrics (``crm_loyalty_liability_*``)."""
    identity.authorize(SUPERVISOR)
    return LiabilityRead(**await reports.liability(uow, programme_store(request)))
