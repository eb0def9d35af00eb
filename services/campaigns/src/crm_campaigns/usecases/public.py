"""What the public links and the providers' callbacks do: an unsubscribe withdraws the channel's
consent (here at once, and in the profile through ``crm.campaigns.unsubscribed``); a provider's
status moves a message forward, and a bounce suppresses its address. Never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from crm_shared.errors import NotFoundError

from crm_campaigns.domain import events
from crm_campaigns.domain.campaigns import CONSENTED_CHANNELS
from crm_campaigns.domain.signing import BadSignature, read_unsubscribe_token

if TYPE_CHECKING:
    from crm_shared.uow import UnitOfWork

    from crm_campaigns.repository import CampaignsRepository

    Uow = UnitOfWork[CampaignsRepository]

CALLBACK_STATUSES = ("delivered", "opened", "clicked", "bounced", "failed")


@dataclass(frozen=True)
class Unsubscribed:
    channel: str
    already: bool


async def message_of_token(uow: Uow, key: bytes, token: str):
    try:
        message_id = read_unsubscribe_token(key, token)
    except BadSignature:
        raise NotFoundError("this unsubscribe link is not valid") from None
    message = await uow.repo.message(message_id)
    if message is None:
        raise NotFoundError("this unsubscribe link is not valid")
    return message


async def unsubscribe(uow: Uow, key: bytes, token: str, at: datetime) -> Unsubscribed:
    """Withdraw the consent of the message's channel (idempotent: a second click changes nothing)."""
    message = await message_of_token(uow, key, token)
    if message.status == "unsubscribed":
        return Unsubscribed(message.channel, already=True)
    await uow.repo.progress_message(message.message_id, "unsubscribed", at)
    consent = CONSENTED_CHANNELS.get(message.channel)
    if consent is not None:
        await uow.repo.set_consents(consent, [{"customer_id": message.customer_id, "granted": False}])
        await uow.publish([events.unsubscribed(message.customer_id, consent, message.campaign_id,
                                               message.message_id, at)])
    await uow.publish([events.message_status(message.message_id, message.campaign_id, message.customer_id,
                                             message.channel, "unsubscribed", at)])
    return Unsubscribed(message.channel, already=False)


async def delivery_status(uow: Uow, message_id: str, status: str, at: datetime) -> None:
    """A provider's news about a message it was given (signature checked by the route)."""
    row = await uow.repo.progress_message(message_id, status, at)
    if row is None:
        raise NotFoundError(f"no message {message_id} was handed to a provider")
    if status == "bounced" and row.address_digest is not None:
        await uow.repo.suppress(row.channel, row.address_digest, reason="bounce", message_id=message_id, at=at)
    await uow.publish([events.message_status(message_id, row.campaign_id, row.customer_id, row.channel, row.status,
                                             at)])
