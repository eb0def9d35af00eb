"""The delivery worker: due contacts are claimed (a lease, so a dead worker's are taken again),
checked against the campaign's rules, and acted on: coupon, bonus points, call-back task, message.

Exactly once per contact: the contact's key is unique; each action asks loyalty or tickets with an
Idempotency-Key derived from the contact, so a retry after a crash replays the first answer; the
message's own guarantees are in ``usecases.messages``. A control or holdout contact is recorded as
done without being acted on; a contact the rules refuse is skipped with its reason.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from crm_shared.logging import get_logger

from crm_campaigns.delivery.gateway import ActionRefused, GatewayBusy, GatewayError
from crm_campaigns.domain.campaigns import CONSENTED_CHANNELS, ordered_actions
from crm_campaigns.domain.pacing import backoff_delay, next_allowed_time
from crm_campaigns.usecases import messages

if TYPE_CHECKING:
    from crm_campaigns.app import CampaignsResources

log = get_logger(__name__)


class _Pacer:
    """Spaces the contacts this process starts by 1/rate seconds (a provider's rate limit), and holds
    them all while the gateway has asked to wait (its 429 and Retry-After)."""

    def __init__(self) -> None:
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self, rate: float | None) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            delay = self._next - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if rate is not None:
                self._next = max(self._next, loop.time()) + 1 / rate

    def hold(self, seconds: float) -> None:
        """No contact starts in this process for ``seconds`` from now."""
        self._next = max(self._next, asyncio.get_running_loop().time() + seconds)


_PACER = _Pacer()


def contact_key(contact: dict[str, Any]) -> dict[str, str]:
    return {k: contact[k] for k in ("campaign_id", "occurrence_key", "customer_id")}


async def deliver_due(res: CampaignsResources, now: datetime | None = None) -> int:
    """Claim and handle one batch of due contacts; returns how many were claimed."""
    settings = res.settings
    now = now or datetime.now(UTC)
    async with res.units() as uow:
        claimed = await uow.repo.claim_due_contacts(now, now + timedelta(seconds=settings.delivery_lease_s),
                                                    settings.delivery_concurrency * 4)
        await uow.commit()
        campaigns = {cid: await uow.repo.campaign_in_force(cid) for cid in {c["campaign_id"] for c in claimed}}
    gate = asyncio.Semaphore(settings.delivery_concurrency)

    async def one(contact: dict[str, Any]) -> None:
        async with gate:
            await _PACER.wait(settings.delivery_rate_per_s)
            try:
                await handle_contact(res, campaigns[contact["campaign_id"]], contact)
            except Exception:  # one contact's surprise must not stop the batch; its lease runs out
                log.exception("contact failed", campaign_id=contact["campaign_id"])

    await asyncio.gather(*(one(c) for c in claimed))
    return len(claimed)


async def handle_contact(res: CampaignsResources, campaign: dict[str, Any], contact: dict[str, Any]) -> None:
    settings = res.settings
    key = contact_key(contact)
    now = datetime.now(UTC)
    channel = campaign["channel"] if any(a["kind"] == "message" for a in campaign["actions"]) else None
    async with res.units() as uow:
        member = await uow.repo.member(contact["customer_id"])
        refusal = await _refusal(uow, campaign, contact, member, channel, now)
        if refusal is None:
            rules = campaign["rules"].get("quiet_hours") or {}
            allowed = next_allowed_time(now, (member.time_zone if member else None) or settings.default_time_zone,
                                        _time(rules.get("start")), _time(rules.get("end")))
            if allowed > now:
                await uow.repo.defer_contact(key, allowed)
                await uow.commit()
                return
        if refusal is not None or contact["group_name"] != "treatment":
            await uow.repo.finish_contact(key, state="skipped" if refusal else "done", reason=refusal, at=now)
            await uow.commit()
            return
    try:
        coupon_code = None
        for action in ordered_actions(campaign["actions"]):
            if action["kind"] == "message":
                outcome = await messages.send(res, campaign, contact, member, coupon_code=coupon_code)
                if outcome == "retry":
                    await _retry(res, key, contact, channel)
                    return
            else:
                coupon_code = await _act(res, campaign, contact, action) or coupon_code
    except GatewayBusy as exc:
        # The gateway's rate limit: every contact of this process waits, and this one is due again
        # after the wait without losing an attempt (a send bigger than the budget is slowed, never dropped).
        _PACER.hold(exc.retry_after_s)
        async with res.units() as uow:
            await uow.repo.defer_contact(key, datetime.now(UTC) + timedelta(seconds=exc.retry_after_s))
            await uow.commit()
        return
    except GatewayError as exc:
        log.info("contact retried", campaign_id=campaign["campaign_id"], reason=str(exc))
        await _retry(res, key, contact, channel)
        return
    async with res.units() as uow:
        await uow.repo.finish_contact(key, state="done", reason=None, at=datetime.now(UTC))
        await uow.commit()


async def _refusal(uow, campaign: dict[str, Any], contact: dict[str, Any], member: Any, channel: str | None,
                   now: datetime) -> str | None:
    """Why the rules refuse this contact now, or None. The same for every group, so the control
    group stays comparable with the treatment."""
    customer_id, rules = contact["customer_id"], campaign["rules"]
    if member is None:
        return "unknown_customer"
    if campaign["kind"] == "triggered":
        if campaign["definition"] is not None:
            if not await uow.repo.in_audience(campaign["definition"], channel, now, [customer_id]):
                return "not_in_audience"
        elif channel in CONSENTED_CHANNELS and not getattr(member, f"consent_{channel}"):
            return "no_consent"
    if rules.get("once_per_days") and await uow.repo.contacted_since(
            campaign["campaign_id"], customer_id, now - timedelta(days=int(rules["once_per_days"]))):
        return "once_per_period"
    cap = rules.get("frequency_cap")
    if cap and channel is not None:
        if await uow.repo.recent_sends(customer_id, channel, now - timedelta(days=float(cap["days"]))) \
                >= int(cap["count"]):
            return "frequency_cap"
    return None


async def _act(res: CampaignsResources, campaign: dict[str, Any], contact: dict[str, Any],
               action: dict[str, Any]) -> str | None:
    """One action through the gateway; returns a coupon code for the message, if it issued one."""
    kind, key = action["kind"], contact_key(contact)
    idempotency_key = f"campaign:{campaign['campaign_id']}:{contact['occurrence_key']}:{contact['customer_id']}:{kind}"
    gateway, now = res.channels.gateway, datetime.now(UTC)
    done = contact["actions_done"].get(kind)
    if done == "refused":
        return None
    code = reference = points = None
    try:
        if kind == "coupon":
            reference, code = await gateway.issue_coupon(action["pool_id"], contact["customer_id"], idempotency_key)
        elif kind == "bonus_points":
            if done:
                return None
            points = int(action["points"])
            reference = await gateway.grant_bonus(contact["customer_id"], points,
                                                  action.get("reason") or f"campaign {campaign['name']}"[:200],
                                                  idempotency_key, idempotency_key)
        elif kind == "callback_task":
            if done:
                return None
            reference = await gateway.create_callback_task(
                contact["customer_id"], (action.get("subject") or f"Call back: {campaign['name']}")[:200],
                f"Campaign {campaign['campaign_id']}, occurrence {contact['occurrence_key']}.", idempotency_key)
    except ActionRefused as exc:
        log.warning("action refused", campaign_id=campaign["campaign_id"], action=kind, reason=str(exc))
        async with res.units() as uow:
            await uow.repo.mark_action(key, kind, "refused")
            await uow.commit()
        return None
    if not done:
        async with res.units() as uow:
            await uow.repo.record_action(key, kind, reference=reference, points=points, at=now)
            await uow.commit()
    return code


async def _retry(res: CampaignsResources, key: dict[str, str], contact: dict[str, Any], channel: str | None) -> None:
    settings = res.settings
    attempt = int(contact.get("attempts") or 0) + 1
    now = datetime.now(UTC)
    async with res.units() as uow:
        if attempt >= settings.delivery_max_attempts:
            await uow.repo.finish_contact(key, state="skipped", reason="failed_after_retries", at=now)
            if channel is not None:
                await messages.fail_unsent(uow, contact, channel, "failed_after_retries")
        else:
            delay = backoff_delay(attempt, settings.delivery_backoff_base_s, settings.delivery_backoff_cap_s,
                                  random.random())
            await uow.repo.defer_contact(key, now + timedelta(seconds=delay), failed=True)
        await uow.commit()


def _time(value: str | None) -> time | None:
    return time.fromisoformat(value) if value else None
