"""HTTP routes of the earning rules beyond spend: the referrals a member made. (The rules themselves
are part of the programme: ``PUT /v1/loyalty/programme``.)"""

from __future__ import annotations

from typing import Annotated

from crm_shared.auth import ALL_ROLES, CurrentIdentity
from crm_shared.problems import PROBLEM_RESPONSE as _PROBLEM
from fastapi import APIRouter, Query

from crm_loyalty.api.common import CustomerIdPath, ReadUow
from crm_loyalty.schemas.accounts import ReferralRead
from crm_loyalty.usecases import rules

router = APIRouter(prefix="/v1/loyalty", tags=["loyalty"])



@router.get("/accounts/{customer_id}/referrals", response_model=list[ReferralRead], responses={403: _PROBLEM})
async def list_referrals(uow: ReadUow, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                         limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[ReferralRead]:
    """The referrals the member made, newest first: ``pending`` until the referred member's first
    paid order, then ``paid`` (both credited once) or ``refused`` with the reason (self-referral,
    same e-mail, phone or payment means as the referrer, …). Customers see only their own."""
    identity.authorize(ALL_ROLES, scope="loyalty:read", customer_id=customer_id)
    return [ReferralRead.model_validate(row) for row in await rules.referrals_of(uow, customer_id, limit)]
