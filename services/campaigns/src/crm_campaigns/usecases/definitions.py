"""Audiences, templates and campaigns as marketers manage them, and a campaign's lifecycle
(activate, approve, pause, resume). None commits: the route does, with its idempotency record.

Changes name the version they were made against: another version in force is a 409, so two
marketers editing the same campaign never overwrite each other silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crm_shared.errors import ConflictError, NotFoundError, RuleViolation

from crm_campaigns.domain.campaigns import CampaignRuleError, after_activation, check_definition, check_transition
from crm_campaigns.domain.templates import (
    SAMPLE_VARIABLES,
    Rendered,
    RenderFailed,
    TemplateContent,
    TemplateInvalid,
    choose_locale,
    render,
    validate,
)
from crm_campaigns.usecases.pages import after_of, cursor_of

if TYPE_CHECKING:
    from crm_shared.uow import UnitOfWork

    from crm_campaigns.repository import CampaignsRepository

    Uow = UnitOfWork[CampaignsRepository]

EDITABLE = frozenset({"draft", "paused"})


def new_id() -> str:
    return str(uuid.uuid4())


def _check_version(what: str, key: str, current: Mapping[str, Any], version: int) -> None:
    if current["version"] != version:
        raise ConflictError(f"{what} {key!r} is at version {current['version']}, not {version}; reload and retry",
                            code="version-conflict", version=current["version"])


# -- audiences -------------------------------------------------------------------------------------

async def create_audience(uow: Uow, audience: dict[str, Any], *, actor: str, at: datetime) -> dict[str, Any]:
    audience = {**audience, "audience_id": audience.get("audience_id") or new_id()}
    row = await uow.repo.insert_audience(audience, actor=actor, at=at)
    if row is None:
        raise ConflictError(f"audience {audience['audience_id']!r} exists", code="audience-exists")
    return row


async def get_audience(uow: Uow, audience_id: str) -> dict[str, Any]:
    row = await uow.repo.audience(audience_id)
    if row is None:
        raise NotFoundError.of("audience", audience_id)
    return row


async def update_audience(uow: Uow, audience_id: str, audience: dict[str, Any], *, version: int,
                          at: datetime) -> dict[str, Any]:
    current = await uow.repo.audience(audience_id, lock=True)
    if current is None:
        raise NotFoundError.of("audience", audience_id)
    _check_version("audience", audience_id, current, version)
    return await uow.repo.update_audience({**audience, "audience_id": audience_id}, at=at)


async def estimate(uow: Uow, audience_id: str, channel: str | None, at: datetime) -> int:
    audience = await get_audience(uow, audience_id)
    return await uow.repo.count_audience(audience["definition"], channel, at)


# -- templates -------------------------------------------------------------------------------------

def check_template(channel: str, contents: Mapping[str, Mapping[str, str | None]]) -> None:
    """Every locale's parts must fit the channel and compile in the sandbox (422 otherwise)."""
    for locale, parts in contents.items():
        try:
            validate(channel, TemplateContent(**parts))
        except TemplateInvalid as error:
            raise RuleViolation(f"{locale}: {error}", code="template-invalid", locale=locale) from None


async def create_template(uow: Uow, template: dict[str, Any], *, actor: str, at: datetime) -> dict[str, Any]:
    check_template(template["channel"], template["contents"])
    template = {**template, "template_id": template.get("template_id") or new_id()}
    row = await uow.repo.insert_template(template, actor=actor, at=at)
    if row is None:
        raise ConflictError(f"template {template['template_id']!r} exists", code="template-exists")
    return row


async def get_template(uow: Uow, template_id: str) -> dict[str, Any]:
    row = await uow.repo.template(template_id)
    if row is None:
        raise NotFoundError.of("template", template_id)
    return row


async def update_template(uow: Uow, template_id: str, template: dict[str, Any], *, version: int,
                          at: datetime) -> dict[str, Any]:
    check_template(template["channel"], template["contents"])
    current = await uow.repo.template(template_id, lock=True)
    if current is None:
        raise NotFoundError.of("template", template_id)
    _check_version("template", template_id, current, version)
    return await uow.repo.update_template({**template, "template_id": template_id}, at=at)


async def preview(uow: Uow, template_id: str, *, locale: str | None, customer_id: str | None,
                  variables: Mapping[str, object], default_locale: str) -> tuple[dict[str, Any], str, Rendered]:
    """The template rendered with sample values: a customer's tier, points and locale from the
    projection when asked (never their name or contact: the projection holds none, and a marketer
    sees no PII), then the caller's ``variables``. Returns the template, the locale and the parts."""
    template = await get_template(uow, template_id)
    customer_locale = locale
    member_values: dict[str, object] = {}
    if customer_id is not None:
        member = await uow.repo.member(customer_id)
        if member is None:
            raise NotFoundError.of("member", customer_id)
        customer_locale = locale or member.locale
        member_values = {"tier": member.tier, "points_balance": member.points_available}
    chosen = choose_locale(template["contents"].keys(), customer_locale or default_locale, default=default_locale)
    sample = SAMPLE_VARIABLES.get(chosen, SAMPLE_VARIABLES["en"])
    values = {**sample, **{k: v for k, v in member_values.items() if v is not None}, **variables}
    try:
        rendered = render(template["channel"], TemplateContent(**template["contents"][chosen]), values)
    except RenderFailed as error:
        raise RuleViolation(str(error), code="template-render-failed") from None
    return template, chosen, rendered


# -- campaigns -------------------------------------------------------------------------------------

async def _check_campaign(uow: Uow, campaign: Mapping[str, Any]) -> None:
    """The parts must exist and fit together (domain rules); 422 with the reason otherwise."""
    channel = None
    if campaign.get("audience_id") is not None and await uow.repo.audience(campaign["audience_id"]) is None:
        raise RuleViolation(f"audience {campaign['audience_id']!r} does not exist", code="audience-unknown")
    if campaign.get("template_id") is not None:
        template = await uow.repo.template(campaign["template_id"])
        if template is None:
            raise RuleViolation(f"template {campaign['template_id']!r} does not exist", code="template-unknown")
        channel = template["channel"]
    try:
        check_definition(campaign["kind"], campaign["schedule"], campaign["actions"], template_channel=channel,
                         has_audience=campaign.get("audience_id") is not None)
    except CampaignRuleError as error:
        raise RuleViolation(str(error), code="campaign-invalid") from None


async def create_campaign(uow: Uow, campaign: dict[str, Any], *, actor: str, at: datetime) -> dict[str, Any]:
    await _check_campaign(uow, campaign)
    campaign = {**campaign, "campaign_id": campaign.get("campaign_id") or new_id()}
    row = await uow.repo.insert_campaign(campaign, actor=actor, at=at)
    if row is None:
        raise ConflictError(f"campaign {campaign['campaign_id']!r} exists", code="campaign-exists")
    return row


async def get_campaign(uow: Uow, campaign_id: str, *, lock: bool = False) -> dict[str, Any]:
    row = await uow.repo.campaign(campaign_id, lock=lock)
    if row is None:
        raise NotFoundError.of("campaign", campaign_id)
    return row


async def update_campaign(uow: Uow, campaign_id: str, campaign: dict[str, Any], *, version: int,
                          at: datetime) -> dict[str, Any]:
    """Replace a draft's or a paused campaign's definition (it must be activated again after)."""
    current = await get_campaign(uow, campaign_id, lock=True)
    _check_version("campaign", campaign_id, current, version)
    if current["status"] not in EDITABLE:
        raise ConflictError(f"a campaign that is {current['status']} cannot be changed; pause it first",
                            code="campaign-not-editable")
    await _check_campaign(uow, campaign)
    return await uow.repo.update_campaign({**campaign, "campaign_id": campaign_id}, at=at)


def _transition(action: str, campaign: Mapping[str, Any]) -> None:
    try:
        check_transition(action, campaign["status"])
    except CampaignRuleError as error:
        raise ConflictError(str(error), code="campaign-transition",
                            campaign_status=campaign["status"]) from None


async def activate(uow: Uow, campaign_id: str, *, approval_threshold: int, at: datetime) -> dict[str, Any]:
    """Estimate the audience now and go live, or wait for a supervisor above the threshold (an
    approval given before, for this very definition, still holds: a change drops it)."""
    campaign = await get_campaign(uow, campaign_id, lock=True)
    _transition("activate", campaign)
    await _check_campaign(uow, campaign)  # its audience or template may have changed since
    size = 0
    if campaign["audience_id"] is not None:
        audience = await get_audience(uow, campaign["audience_id"])
        channel = None
        if campaign["template_id"] is not None:
            channel = (await get_template(uow, campaign["template_id"]))["channel"]
        size = await uow.repo.count_audience(audience["definition"], channel, at)
    status = after_activation(size, approval_threshold, approved=campaign["approved_by"] is not None)
    return await uow.repo.set_campaign_status(campaign_id, status, estimated_size=size, at=at)


async def approve(uow: Uow, campaign_id: str, *, actor: str, at: datetime) -> dict[str, Any]:
    campaign = await get_campaign(uow, campaign_id, lock=True)
    _transition("approve", campaign)
    return await uow.repo.set_campaign_status(campaign_id, "active", approved_by=actor, approved_at=at, at=at)


async def pause(uow: Uow, campaign_id: str, *, at: datetime) -> dict[str, Any]:
    campaign = await get_campaign(uow, campaign_id, lock=True)
    _transition("pause", campaign)
    return await uow.repo.set_campaign_status(campaign_id, "paused", at=at)


async def resume(uow: Uow, campaign_id: str, *, approval_threshold: int, at: datetime) -> dict[str, Any]:
    """Back to where activation left it: active, or awaiting approval if it was paused before a
    supervisor approved it. A definition changed while paused has no estimate: activate it again."""
    campaign = await get_campaign(uow, campaign_id, lock=True)
    _transition("resume", campaign)
    if campaign["estimated_size"] is None:
        raise ConflictError("the campaign changed while paused; activate it again", code="campaign-changed")
    status = after_activation(campaign["estimated_size"], approval_threshold,
                              approved=campaign["approved_by"] is not None)
    return await uow.repo.set_campaign_status(campaign_id, status, at=at)


async def list_campaigns(uow: Uow, *, status: str | None, cursor: str | None,
                         limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """A page of campaigns, newest first, and the cursor of the next (None: the last)."""
    rows = await uow.repo.campaigns(status, limit + 1, after=after_of(cursor) if cursor else None)
    page = rows[:limit]
    return page, (cursor_of(page[-1]["created_at"], page[-1]["campaign_id"]) if len(rows) > limit else None)
