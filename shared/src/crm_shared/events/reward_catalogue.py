"""The reward catalogue's events (loyalty service): what it announces when a member redeems a
reward and when the reward's fulfilment moves, and what a fulfilment system tells it. Ids, names,
amounts and statuses only: no personal data, never a coupon code."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from crm_shared.events.fields import Amount, AwareDatetime, CurrencyCode, CustomerId, EventData, ShortText

RewardKind = Literal["gift", "cash_voucher", "coupon", "free_shipping"]
FulfilmentStatus = Literal["requested", "shipped", "delivered", "cancelled"]
RedemptionId = Annotated[str, StringConstraints(min_length=1, max_length=100)]
RewardId = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class LoyaltyRewardRedeemedData(EventData):
    """``crm.loyalty.reward.redeemed``: a member redeemed ``quantity`` units of a reward for
    ``points`` (plus ``cash_due`` to pay the shop, for points + cash rewards). Gifts start
    ``requested`` (to be shipped); digital rewards ``delivered`` (a coupon issued at once). The
    points movement itself is ``crm.loyalty.points.redeemed`` with the same ``redemption_id``."""

    redemption_id: RedemptionId
    customer_id: CustomerId
    reward_id: RewardId
    reward_name: ShortText
    kind: RewardKind
    quantity: int
    points: int
    cash_due: Amount | None = None
    cash_currency: CurrencyCode | None = None
    fulfilment_status: FulfilmentStatus
    redeemed_at: AwareDatetime


class LoyaltyRewardFulfilmentChangedData(EventData):
    """``crm.loyalty.reward.fulfilment_changed``: a reward redemption moved (shipped, delivered,
    or cancelled: then ``points_returned`` went back to the member and the units to stock)."""

    redemption_id: RedemptionId
    customer_id: CustomerId
    reward_id: RewardId
    status: FulfilmentStatus
    at: AwareDatetime
    points_returned: int | None = None


class RewardFulfilmentUpdatedData(EventData):
    """``commerce.reward.fulfilment.updated``: a fulfilment system reports where a redeemed reward
    is (the ``redemption_id`` of ``crm.loyalty.reward.redeemed``). A status that may not follow the
    current one is dead-lettered; the same status twice changes nothing. ``customer_id`` (the
    record key, from the redeemed event) keeps a member's updates in order."""

    customer_id: CustomerId
    redemption_id: RedemptionId
    status: Literal["shipped", "delivered", "cancelled"]
    occurred_at: AwareDatetime
    note: Annotated[str, StringConstraints(max_length=500)] | None = None
