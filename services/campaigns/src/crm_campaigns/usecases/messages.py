"""Sending one contact's message on its campaign's channel.

The address is read from the profile for this message only (audited there) and never stored; a
keyed digest of it is kept, so that a bounce suppresses the address and not the customer. The
template is rendered in the customer's language in the sandbox.

Once only, per channel:
- e-mail: the ``sent`` record (with the contact done and the status event) is committed after the
  SMTP server took the whole body and before the final "." that makes it accept the message. A
  kill before the commit leaves the server discarding an unterminated message and the contact due
  again; after it, the message counts as sent. So a restart never sends a message twice.
- SMS and webhooks: at least once with a stable ``X-CRM-Message-Id`` the receiver dedupes on.
- ``crm.notifications``: the request is written to the outbox in the transaction that records it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from crm_shared.logging import get_logger

from crm_campaigns.delivery.gateway import Contact
from crm_campaigns.delivery.smtp import build_email
from crm_campaigns.domain import events
from crm_campaigns.domain.addresses import address_digest, message_id_for
from crm_campaigns.domain.campaigns import CONSENTED_CHANNELS
from crm_campaigns.domain.signing import unsubscribe_token
from crm_campaigns.domain.templates import TemplateContent, choose_locale, render

if TYPE_CHECKING:
    from crm_campaigns.app import CampaignsResources

log = get_logger(__name__)
PII_VARIABLES = ("name",)  # what a notification request may not carry
SECRET_VARIABLES = ("coupon_code",)


async def send(res: CampaignsResources, campaign: dict[str, Any], contact: dict[str, Any], member: Any, *,
               coupon_code: str | None) -> str:
    """'done' (sent, or final for another reason: skipped, suppressed, failed) or 'retry'."""
    settings, channel = res.settings, campaign["channel"]
    message_id = message_id_for(contact["campaign_id"], contact["occurrence_key"], contact["customer_id"], channel)
    now = datetime.now(UTC)
    async with res.units() as uow:
        attempt = await uow.repo.start_message({
            "message_id": message_id, "campaign_id": contact["campaign_id"],
            "occurrence_key": contact["occurrence_key"],
            "customer_id": contact["customer_id"], "channel": channel, "locale": None, "at": now,
            "lease_until": now + timedelta(seconds=settings.delivery_lease_s)})
        await uow.commit()
    if attempt is None:
        return "done"  # sent (or final) before a restart
    address: Contact | None = None
    if channel in CONSENTED_CHANNELS:
        address = await res.channels.gateway.contact(contact["customer_id"], message_id)
        refusal = _refusal(address, channel)
        if refusal is not None:
            await _final(res, message_id, "skipped", refusal)
            return "done"
    digest = address_digest(settings.link_key.get_secret_value().encode(), channel, address.address(channel)) \
        if address is not None else None
    if digest is not None:
        async with res.units(read_only=True) as uow:
            if await uow.repo.is_suppressed(channel, digest):
                await _final(res, message_id, "suppressed", "address suppressed (bounce)")
                return "done"
    contents = campaign["contents"] or {}
    locale = choose_locale(contents, (member.locale if member else None) or (address.locale if address else None),
                           default=settings.default_locale)
    variables = _variables(res, campaign, contact, member, address, message_id, coupon_code)
    try:
        rendered = render(channel, TemplateContent(**{k: contents[locale].get(k) for k in
                                                      ("subject", "html", "text", "body")}), variables)
    except ValueError as exc:
        await _final(res, message_id, "failed", f"template: {exc}"[:300])
        return "done"

    async def commit_sent() -> None:
        async with res.units() as uow:
            await _record(uow, message_id, contact, channel, "sent", digest=digest)
            await uow.commit()

    if channel == "email":
        email = build_email(message_id=message_id, to=address.email, from_=res.channels.mail_from,
                            subject=rendered.subject, text=rendered.text, html=rendered.html,
                            unsubscribe_url=variables["unsubscribe_url"], domain=settings.mail_domain)
        outcome = await res.channels.smtp.send(email, commit_sent=commit_sent)
    elif channel in ("sms", "webhook"):
        sender = res.channels.sms if channel == "sms" else res.channels.webhook
        if sender is None:
            await _final(res, message_id, "failed", f"no {channel} provider configured")
            return "done"
        payload = {"message_id": message_id, "campaign_id": contact["campaign_id"], "locale": locale,
                   **({"to": address.phone, "text": rendered.text} if channel == "sms" else
                      {"customer_id": contact["customer_id"], "body": rendered.body})}
        outcome = await sender.send(message_id, payload)
        if outcome.status == "sent":
            await commit_sent()
    else:  # notification: the shop's own messaging system renders and sends it
        async with res.units() as uow:
            params = {k: v for k, v in variables.items() if k not in PII_VARIABLES + SECRET_VARIABLES}
            await uow.publish([events.notification(contact["customer_id"], {
                **params, "message_id": message_id, "campaign_id": contact["campaign_id"],
                "template_id": campaign["template_id"], "locale": locale}, datetime.now(UTC))])
            await _record(uow, message_id, contact, channel, "sent", digest=None)
            await uow.commit()
        res.metrics.attempted(channel, "sent")
        return "done"
    res.metrics.attempted(channel, outcome.status)
    if outcome.status == "sent":
        _observe_trigger_latency(res, contact)
        return "done"
    if getattr(outcome, "committed", False) and outcome.status == "retry":
        # Recorded as sent, then the server hung up before taking the dot: it discarded the
        # message, so the contact is due again.
        async with res.units() as uow:
            await uow.repo.reopen_contact({k: contact[k] for k in ("campaign_id", "occurrence_key", "customer_id")})
            await uow.commit()
    if outcome.status == "bounced":
        async with res.units() as uow:
            await _record(uow, message_id, contact, channel, "bounced", digest=digest, error=outcome.reason)
            await uow.repo.suppress(channel, digest, reason="bounce", message_id=message_id, at=datetime.now(UTC))
            await uow.commit()
        return "done"
    if outcome.status == "failed":
        await _final(res, message_id, "failed", outcome.reason)
        return "done"
    async with res.units() as uow:
        await uow.repo.set_message_status(message_id, "queued", at=datetime.now(UTC), error=outcome.reason)
        await uow.commit()
    return "retry"


def _refusal(address: Contact | None, channel: str) -> str | None:
    if address is None:
        return "unknown or erased customer"
    if not address.consents_to(channel):
        return "no consent"
    if not address.address(channel):
        return f"no {channel} address"
    return None


def _variables(res, campaign, contact, member, address, message_id: str, coupon_code: str | None) -> dict[str, Any]:
    attributes = contact.get("attributes") or {}
    token = unsubscribe_token(res.settings.link_key.get_secret_value().encode(), message_id)
    return {
        "name": address.name if address else None, "tier": member.tier if member else None,
        "points_balance": member.points_available if member else None,
        "points_expiring": attributes.get("points"), "points_expiring_on": attributes.get("expires_on"),
        "coupon_code": coupon_code, "campaign_name": campaign["name"], "shop_name": res.settings.shop_name,
        "unsubscribe_url": f"{res.settings.public_base_url.rstrip('/')}/v1/public/unsubscribe/{token}"}


async def _record(uow, message_id: str, contact: dict[str, Any], channel: str, status: str, *,
                  digest: bytes | None, error: str | None = None) -> None:
    now = datetime.now(UTC)
    row = await uow.repo.set_message_status(message_id, status, at=now, error=error, digest=digest)
    await uow.publish([events.message_status(message_id, contact["campaign_id"], contact["customer_id"], channel,
                                             status, now)])
    if row is not None and status == "sent":
        await uow.repo.finish_contact({k: contact[k] for k in ("campaign_id", "occurrence_key", "customer_id")},
                                      state="done", reason=None, at=now)


async def fail_unsent(uow, contact: dict[str, Any], channel: str, reason: str) -> None:
    """The contact gave up after its retries: a message it started and never sent is ``failed``
    (and announced so), not left ``sending``."""
    message_id = message_id_for(contact["campaign_id"], contact["occurrence_key"], contact["customer_id"], channel)
    row = await uow.repo.message(message_id)
    if row is not None and row.status in ("sending", "queued"):
        await _record(uow, message_id, contact, channel, "failed", digest=None, error=reason)


async def _final(res, message_id: str, status: str, reason: str | None) -> None:
    async with res.units() as uow:
        row = await uow.repo.set_message_status(message_id, status, at=datetime.now(UTC), error=reason)
        if row is not None:
            await uow.publish([events.message_status(message_id, row.campaign_id, row.customer_id, row.channel,
                                                     status, datetime.now(UTC))])
        await uow.commit()


def _observe_trigger_latency(res, contact: dict[str, Any]) -> None:
    if contact["occurrence_key"].startswith("event:"):
        res.metrics.trigger_latency.observe((datetime.now(UTC) - contact["created_at"]).total_seconds())
