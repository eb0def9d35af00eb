"""The events between the profile and the campaigns service: consents as the profile records them,
and what became of each campaign message. Ids, channels, statuses and times only: never an address,
a phone number or a message's text (the campaigns service stores no PII)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from crm_shared.events.fields import AwareDatetime, CustomerId, EventData

ConsentChannel = Literal["email", "sms"]
# Why a consent changed: the shop's registration or update event, an agent's edit in the profile, an
# unsubscribe link of a campaign message, an erasure (every consent withdrawn).
ConsentSource = Literal["registration", "update", "agent", "unsubscribe", "erasure"]
MessageChannel = Literal["email", "sms", "webhook", "notification"]
MessageStatus = Literal["queued", "sent", "delivered", "bounced", "failed", "opened", "clicked", "unsubscribed",
                        "suppressed"]
CampaignRef = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class ProfileConsentChangedData(EventData):
    """``crm.profile.consent.changed``: a customer's marketing consent for one channel changed in the
    profile (sent only when the value really changed, and for each channel a registration states).
    The campaigns service keeps its own copy of the consents from it; the profile stays their owner."""

    customer_id: CustomerId
    channel: ConsentChannel
    granted: bool
    source: ConsentSource
    changed_at: AwareDatetime


class CampaignMessageStatusChangedData(EventData):
    """``crm.campaigns.message.status_changed``: a campaign message moved (queued, sent, delivered,
    bounced, …). ``suppressed``: not sent, for want of consent or contact, or by a frequency cap."""

    message_id: CampaignRef
    campaign_id: CampaignRef
    customer_id: CustomerId
    channel: MessageChannel
    status: MessageStatus
    at: AwareDatetime


class CampaignUnsubscribedData(EventData):
    """``crm.campaigns.unsubscribed``: a customer followed the unsubscribe link of a campaign message;
    the profile withdraws that channel's consent (and announces it with ``crm.profile.consent.changed``)."""

    customer_id: CustomerId
    channel: ConsentChannel
    campaign_id: CampaignRef
    message_id: CampaignRef
    at: AwareDatetime


class LoyaltyCouponUseData(EventData):
    """``crm.loyalty.coupon.used`` / ``crm.loyalty.coupon.released``: a paid order used a coupon (its
    discount applied), or a cancelled order gave the use back. Never the code. The campaigns service
    counts the coupons its campaigns issued that were redeemed."""

    coupon_id: CampaignRef
    pool_id: CampaignRef
    customer_id: CustomerId
    order_id: CampaignRef
    at: AwareDatetime
