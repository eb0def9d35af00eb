"""Event handlers of the tickets service: one table by event type, each handler translating a
batch into one use case (usecases/events.py says what each does). Handlers never commit."""

from __future__ import annotations

from typing import Any

from crm_shared.bus import Inbound, ServiceHandler, topics_of
from crm_shared.erasure import erased_at_of
from crm_shared.events.catalogue import (
    ChurnRiskChangedData,
    LoyaltyTierChangedData,
    ProfileCustomerErasedData,
    ProfileCustomerMergedData,
    ProfileCustomerUnmergedData,
)
from crm_shared.merges import MERGED, UNMERGED, merges_in, resolving_merged, unmerges_in

from crm_tickets.usecases import events as usecases
from crm_tickets.usecases.workflow import Uow


async def on_tier_changed(resources: Any, uow: Uow, events: list[Inbound[LoyaltyTierChangedData]]) -> None:
    await usecases.tiers_changed(uow, {e.data.customer_id: e.data.new_tier for e in events})


async def on_churn_risk_changed(resources: Any, uow: Uow, events: list[Inbound[ChurnRiskChangedData]]) -> None:
    await usecases.churn_risk_changed(uow, resources.policy, [usecases.RiskChange(
        customer_id=e.data.customer_id, old_level=e.data.old_level, new_level=e.data.new_level, score=e.data.score,
        model_version=e.data.model_version, reasons=[(r.factor, r.contribution) for r in e.data.reasons],
        scored_at=e.data.scored_at, traceparent=e.event.traceparent) for e in events])


async def on_customer_erased(resources: Any, uow: Uow, events: list[Inbound[ProfileCustomerErasedData]]) -> None:
    # the customer and every duplicate merged into it; a replayed erasure keeps the first time
    await usecases.customers_erased(uow, erased_at_of(events))


async def on_customer_merged(resources: Any, uow: Uow, events: list[Inbound[ProfileCustomerMergedData]]) -> None:
    await usecases.customers_merged(uow, merges_in(events))


async def on_customer_unmerged(resources: Any, uow: Uow, events: list[Inbound[ProfileCustomerUnmergedData]]) -> None:
    await usecases.customers_unmerged(uow, unmerges_in(events))


HANDLERS: dict[str, ServiceHandler] = resolving_merged({
    "crm.loyalty.tier.changed": on_tier_changed,
    "crm.churn.risk.changed": on_churn_risk_changed,
    "crm.profile.customer.erased": on_customer_erased,
    MERGED: on_customer_merged,
    UNMERGED: on_customer_unmerged,
})
TOPICS = topics_of(HANDLERS)
