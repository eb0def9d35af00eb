"""HTTP routes of what campaigns did: a campaign's results and lift, its messages (marketing;
integrations with ``campaigns:read``), and a customer's recent campaign contacts (the 360 view:
the call centre, supervisors, marketers). Identifiers and statuses only: the database holds no PII."""

from __future__ import annotations

from typing import Annotated, Literal

from crm_shared.auth import MARKETING, CurrentIdentity, Role
from crm_shared.problems import PROBLEM_RESPONSE as _PROBLEM
from fastapi import APIRouter, Path, Query, Request

from crm_campaigns.api.common import ReadUow, resources
from crm_campaigns.schemas.campaigns import ContactList, ContactRead, MessagePage, MessageRead
from crm_campaigns.schemas.results import ResultsRead
from crm_campaigns.usecases import results

router = APIRouter(prefix="/v1", tags=["campaigns"])

READERS = frozenset({*MARKETING, Role.SERVICE})
CONTACT_READERS = frozenset({*MARKETING, Role.AGENT, Role.SERVICE})
READ = "campaigns:read"
CampaignIdPath = Path(min_length=1, max_length=64)
MessageStatus = Literal["queued", "sending", "sent", "delivered", "bounced", "failed", "opened", "clicked",
                        "unsubscribed", "suppressed", "skipped"]


@router.get("/campaigns/{campaign_id}/results", response_model=ResultsRead, responses={404: _PROBLEM})
async def campaign_results(request: Request, uow: ReadUow, identity: CurrentIdentity,
                           campaign_id: str = CampaignIdPath) -> ResultsRead:
    """Contacts by group (skipped by reason), messages by the stages they reached, coupons issued
    and redeemed, points granted, and the lift of the treatment over the control: conversion
    within ``conversion_days`` of the contact with its confidence interval, and revenue per
    customer (orders in the service's VALUE_CURRENCY only) with Welch's interval."""
    identity.authorize(READERS, scope=READ)
    currency = resources(request).settings.value_currency
    return ResultsRead.model_validate(await results.results(uow, campaign_id, currency=currency))


@router.get("/campaigns/{campaign_id}/messages", response_model=MessagePage,
            responses={404: _PROBLEM, 422: _PROBLEM})
async def campaign_messages(uow: ReadUow, identity: CurrentIdentity, campaign_id: str = CampaignIdPath,
                            status: MessageStatus | None = None,
                            limit: Annotated[int, Query(ge=1, le=500)] = 100,
                            cursor: Annotated[str | None, Query(max_length=200)] = None) -> MessagePage:
    """The campaign's messages, newest first, a page at a time (``next_cursor``)."""
    identity.authorize(READERS, scope=READ)
    rows, next_cursor = await results.campaign_messages(uow, campaign_id, status=status, cursor=cursor, limit=limit)
    return MessagePage(items=[MessageRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/campaign-contacts", response_model=ContactList)
async def campaign_contacts(uow: ReadUow, identity: CurrentIdentity,
                            customer_id: Annotated[str, Query(min_length=1, max_length=100)],
                            limit: Annotated[int, Query(ge=1, le=100)] = 10) -> ContactList:
    """A customer's recent campaign contacts, newest first: which campaign, channel, group
    (treatment, control, holdout) and status (the message's, else the contact's)."""
    identity.authorize(CONTACT_READERS, scope=READ)
    rows = await results.customer_contacts(uow, customer_id, limit)
    return ContactList(items=[ContactRead.model_validate(r) for r in rows])
