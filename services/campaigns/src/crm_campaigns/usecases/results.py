"""A campaign's results and lift, its messages, and a customer's recent campaign contacts.

Lift compares the treatment (contacts acted on) with the control (contacts recorded and left
alone), per customer: converted when an order of theirs, not cancelled, was paid within the
campaign's ``conversion_days`` after a contact. Revenue counts orders in one currency only (the
service's ``VALUE_CURRENCY``): amounts in different currencies do not add up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crm_campaigns.domain.lift import GroupOutcome, lift
from crm_campaigns.usecases.definitions import get_campaign
from crm_campaigns.usecases.pages import after_of, cursor_of

if TYPE_CHECKING:
    from crm_shared.uow import UnitOfWork

    from crm_campaigns.repository import CampaignsRepository

    Uow = UnitOfWork[CampaignsRepository]

DEFAULT_CONVERSION_DAYS = 7


def _outcome(row: Any) -> GroupOutcome:
    if row is None:
        return GroupOutcome(customers=0, converted=0, revenue=Decimal(0), revenue_sq=Decimal(0))
    return GroupOutcome(customers=row.customers, converted=row.converted, revenue=Decimal(row.revenue),
                        revenue_sq=Decimal(row.revenue_sq))


async def results(uow: Uow, campaign_id: str, *, currency: str) -> dict[str, Any]:
    campaign = await get_campaign(uow, campaign_id)
    days = int(campaign["rules"].get("conversion_days") or DEFAULT_CONVERSION_DAYS)
    groups: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    pending = 0
    for row in await uow.repo.contact_counts(campaign_id):
        if row["state"] == "skipped":
            skipped[row["skip_reason"] or "unknown"] += row["n"]
        elif row["state"] == "pending":
            pending += row["n"]
        if row["group_name"] == "holdout" or row["state"] == "done":
            groups[row["group_name"]] += row["n"]
    actions = await uow.repo.action_counts(campaign_id)
    outcomes = await uow.repo.group_outcomes(campaign_id, conversion_days=days, currency=currency)
    treatment, control = _outcome(outcomes.get("treatment")), _outcome(outcomes.get("control"))
    measured = asdict(lift(treatment, control))
    return {
        "campaign_id": campaign_id,
        "contacts": {"treatment": groups["treatment"], "control": groups["control"], "holdout": groups["holdout"],
                     "pending": pending, "skipped": dict(skipped)},
        "messages": await uow.repo.message_counts(campaign_id),
        "coupons": {"issued": actions["coupons_issued"], "redeemed": actions["coupons_redeemed"]},
        "points_granted": int(actions["points_granted"]),
        "conversion_days": days,
        "lift": {**measured, "currency": currency,
                 "treatment": {"customers": treatment.customers, "converted": treatment.converted,
                               "revenue": treatment.revenue},
                 "control": {"customers": control.customers, "converted": control.converted,
                             "revenue": control.revenue}},
    }


# -- pages -----------------------------------------------------------------------------------------

async def campaign_messages(uow: Uow, campaign_id: str, *, status: str | None, cursor: str | None,
                            limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the campaign's messages, newest first, and the cursor of the next (None: the last)."""
    await get_campaign(uow, campaign_id)
    after = after_of(cursor) if cursor else None
    rows = await uow.repo.campaign_messages(campaign_id, status=status, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (cursor_of(rows[-1]["created_at"], rows[-1]["message_id"]) if more else None)


async def customer_contacts(uow: Uow, customer_id: str, limit: int) -> list[dict[str, Any]]:
    return await uow.repo.customer_contacts(customer_id, limit)
