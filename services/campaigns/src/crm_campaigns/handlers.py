"""Event handlers of the campaigns service, in one table by event type: each translates a batch
into the members' projection (``usecases.projection``) and the journeys it triggers
(``usecases.triggers``). Events about a merged duplicate apply to its survivor. Handlers never commit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crm_shared.bus import Inbound, ServiceHandler, topics_of
from crm_shared.erasure import erased_at_of
from crm_shared.merges import MERGED, UNMERGED, merges_in, resolving_merged, unmerges_in

from crm_campaigns.usecases import projection, triggers
from crm_campaigns.usecases.triggers import Hit

if TYPE_CHECKING:
    from crm_shared.uow import UnitOfWork

    from crm_campaigns.app import CampaignsResources
    from crm_campaigns.repository import CampaignsRepository

    Uow = UnitOfWork[CampaignsRepository]


def _hit(e: Inbound[Any], **attributes: Any) -> Hit:
    return Hit(e.data.customer_id, e.event.id, e.event.time or datetime.now(UTC), attributes)


async def _fire(resources: CampaignsResources, uow: Uow, trigger: str, hits: list[Hit]) -> None:
    await triggers.fire(uow, trigger, hits, holdout_share=resources.settings.global_holdout_share)


async def on_customer(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await projection.customers(uow, [projection.CustomerFacts(
        e.data.customer_id, locale=getattr(e.data, "locale", None), time_zone=getattr(e.data, "time_zone", None),
        birthday=e.data.birthday, registered_at=e.data.registered_at,
        consent_email=e.data.consents.email if e.data.consents else None,
        consent_sms=e.data.consents.sms if e.data.consents else None) for e in events])


async def on_consent_changed(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await projection.consents(uow, [(e.data.customer_id, e.data.channel, e.data.granted) for e in events])


def on_coupon(released: bool) -> Callable[..., Any]:
    async def handle(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
        await projection.coupon_uses(uow, [{"coupon_id": e.data.coupon_id, "order_id": e.data.order_id,
                                            "at": e.data.at} for e in events], released=released)
    return handle


async def on_birthday_changed(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await projection.birthdays(uow, [(e.data.customer_id, e.data.month, e.data.day) for e in events])


async def on_profile_updated(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    currency = resources.settings.value_currency
    await projection.statistics(uow, [(e.data.customer_id, e.data.order_count,
                                       Decimal(e.data.total_spent.get(currency, "0")), e.data.last_order_at)
                                      for e in events])


def on_segment(entered: bool) -> Callable[..., Any]:
    async def handle(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
        await projection.segments(uow, [(e.data.customer_id, e.data.segment_id) for e in events], entered=entered)
        if entered:
            await _fire(resources, uow, "segment_entered", [_hit(e, segment_id=e.data.segment_id) for e in events])
    return handle


async def on_tier_changed(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await projection.tiers(uow, [(e.data.customer_id, e.data.new_tier) for e in events])
    await _fire(resources, uow, "tier_changed", [_hit(e, new_tier=e.data.new_tier, old_tier=e.data.old_tier)
                                                 for e in events if e.data.old_tier is not None])


async def on_points(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await projection.points(uow, [(e.data.customer_id, e.data.available) for e in events])


async def on_churn(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await projection.churn(uow, [(e.data.customer_id, e.data.new_level, e.data.score) for e in events])
    await _fire(resources, uow, "churn_high", [_hit(e) for e in events
                                               if e.data.new_level == "high" and e.data.old_level != "high"])


async def on_order_paid(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await projection.orders_paid(uow, [projection.PaidOrder(
        e.data.order_id, e.data.customer_id, e.data.occurred_at, e.data.currency, e.data.total_amount,
        tuple(sorted({i.category for i in e.data.items if i.category}))) for e in events])


async def on_order_completed(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await _fire(resources, uow, "order_completed", [_hit(e, order_id=e.data.order_id) for e in events])


async def on_order_cancelled(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await projection.orders_cancelled(uow, [e.data.order_id for e in events])


async def on_order_refunded(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await projection.orders_refunded(uow, [(e.data.order_id, e.data.refund_amount) for e in events])


async def on_ticket_resolved(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await _fire(resources, uow, "ticket_resolved", [_hit(e, kind=e.data.kind, ticket_id=e.data.ticket_id)
                                                    for e in events])


async def on_notification(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    # Requests from loyalty and tickets (points expiring, win-back offer, tier upgrade, follow-up)
    # start journeys; the ones this service publishes for shops that deliver themselves do not.
    await _fire(resources, uow, "notification", [_hit(e, **{**e.data.params, "kind": e.data.kind}) for e in events
                                                 if e.data.kind != "campaign_message"])


async def on_customer_erased(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await projection.erase(uow, erased_at_of(events))


async def on_customer_merged(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await projection.merged(uow, merges_in(events))


async def on_customer_unmerged(resources: CampaignsResources, uow: Uow, events: list[Inbound[Any]]) -> None:
    await projection.unmerged(uow, unmerges_in(events))


HANDLERS: dict[str, ServiceHandler] = resolving_merged({
    "commerce.customer.registered": on_customer,
    "commerce.customer.updated": on_customer,
    "commerce.order.paid": on_order_paid,
    "commerce.order.completed": on_order_completed,
    "commerce.order.cancelled": on_order_cancelled,
    "commerce.order.refunded": on_order_refunded,
    "crm.profile.customer.updated": on_profile_updated,
    "crm.profile.customer.birthday_changed": on_birthday_changed,
    "crm.profile.consent.changed": on_consent_changed,
    "crm.profile.segment.entered": on_segment(True),
    "crm.profile.segment.exited": on_segment(False),
    "crm.profile.customer.erased": on_customer_erased,
    "crm.loyalty.tier.changed": on_tier_changed,
    **{f"crm.loyalty.points.{verb}": on_points for verb in ("earned", "redeemed", "reversed", "expired", "adjusted")},
    "crm.loyalty.coupon.used": on_coupon(False),
    "crm.loyalty.coupon.released": on_coupon(True),
    "crm.churn.risk.changed": on_churn,
    "crm.tickets.ticket.resolved": on_ticket_resolved,
    "crm.notification.requested": on_notification,
    MERGED: on_customer_merged,
    UNMERGED: on_customer_unmerged,
})
TOPICS = topics_of(HANDLERS)
