"""Event handlers of the tickets service, registered in one table by event type.

The tickets service keeps a copy of each customer's tier and churn level (they set priorities and
SLA targets), turns a key customer's turn to high churn risk into a follow-up task for the call
centre, erases free text when the profile erases a customer, and follows merges (merges.py).
Handlers never commit.
"""

from __future__ import annotations

from datetime import timedelta

from crm_shared.bus import HandlerTable, Inbound
from crm_shared.erasure import erased_among
from crm_shared.events.catalogue import (
    TOPIC_CHURN,
    TOPIC_LOYALTY,
    TOPIC_PROFILE,
    ChurnRiskChangedData,
    LoyaltyTierChangedData,
    ProfileCustomerErasedData,
)
from crm_shared.merges import resolving_merged
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_tickets.erasure import erase_customers
from crm_tickets.merges import merge_handlers
from crm_tickets.repository import PolicyStore, open_ticket

TOPICS = (TOPIC_LOYALTY, TOPIC_CHURN, TOPIC_PROFILE)

_COPY = {column: text(f"""
    INSERT INTO customer_levels (customer_id, {column})
    SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:values AS text[]))
    ON CONFLICT (customer_id) DO UPDATE SET {column} = excluded.{column}
""") for column in ("tier", "churn_level")}
_CLAIM_FOLLOW_UP = text("""
    UPDATE customer_levels SET follow_up_at = :at
    WHERE customer_id = :customer_id AND tier = ANY(CAST(:key_tiers AS text[]))
      AND (follow_up_at IS NULL
           OR follow_up_at <= CAST(:at AS timestamptz) - make_interval(days => CAST(:period_days AS integer)))
    RETURNING customer_id
""")


def build_handlers(store: PolicyStore) -> HandlerTable:
    async def on_tier_changed(tx: AsyncConnection, events: list[Inbound[LoyaltyTierChangedData]]) -> None:
        latest = {e.data.customer_id: e.data.new_tier for e in events}  # partition order: the last wins
        await tx.execute(_COPY["tier"], {"ids": list(latest), "values": list(latest.values())})

    async def on_churn_risk_changed(tx: AsyncConnection, events: list[Inbound[ChurnRiskChangedData]]) -> None:
        """Copy the level; a key customer turning high-risk gets one follow-up task per period, due
        within ``follow_up_due_hours`` (a redelivered or repeated warning finds the period taken)."""
        latest = {e.data.customer_id: e.data.new_level for e in events}
        await tx.execute(_COPY["churn_level"], {"ids": list(latest), "values": list(latest.values())})
        _, policy = await store.current(tx)
        erased = await erased_among(tx, list(latest))  # a late warning: no task to call them
        for inbound in events:
            data = inbound.data
            if data.new_level != "high" or data.old_level == "high" or data.customer_id in erased:
                continue
            claimed = (await tx.execute(_CLAIM_FOLLOW_UP, {
                "customer_id": data.customer_id, "at": data.scored_at, "key_tiers": policy.key_tiers,
                "period_days": policy.follow_up_period_days})).first()
            if claimed is None:
                continue
            reasons = "; ".join(f"{r.factor} ({r.contribution:.2f})" for r in data.reasons[:3])
            await open_ticket(tx, policy, fields={
                "customer_id": data.customer_id, "kind": "follow_up", "channel": "system",
                "category": "churn_follow_up", "subject": "Call back a key customer at high churn risk",
                "description": f"Churn risk {data.score:.2f} (model {data.model_version}). Reasons: {reasons}",
                "items": []}, actor="system:churn", now=data.scored_at,
                due_within=timedelta(hours=policy.follow_up_due_hours), traceparent=inbound.event.traceparent)

    async def on_customer_erased(tx: AsyncConnection, events: list[Inbound[ProfileCustomerErasedData]]) -> None:
        """Free text may hold personal data: see erasure.py."""
        await erase_customers(tx, events)

    return resolving_merged({
        "crm.loyalty.tier.changed": on_tier_changed,
        "crm.churn.risk.changed": on_churn_risk_changed,
        "crm.profile.customer.erased": on_customer_erased,
        **merge_handlers(),
    })
