"""HTTP routes of audiences, templates and campaigns (marketers and supervisors; integrations with
``campaigns:manage`` to write, ``campaigns:read`` to read), and a campaign's lifecycle: activate,
pause, resume (marketing), approve (supervisors). POSTs require ``Idempotency-Key``; a PUT names
the ``version`` it was made against (409 when another is in force)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from crm_shared import idempotency
from crm_shared.auth import MARKETING, SUPERVISOR, CurrentIdentity, Identity, Role
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import PROBLEM_RESPONSE as _PROBLEM
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from crm_campaigns.api.common import ReadUow, Uow, resources
from crm_campaigns.schemas.audiences import AudienceCreate, AudienceRead, AudienceUpdate, EstimateRead
from crm_campaigns.schemas.campaigns import CampaignCreate, CampaignPage, CampaignRead, CampaignUpdate
from crm_campaigns.schemas.templates import PreviewRead, PreviewRequest, TemplateCreate, TemplateRead, TemplateUpdate
from crm_campaigns.usecases import definitions

router = APIRouter(prefix="/v1", tags=["campaigns"])

# Integrations act as service callers with scopes; people by role.
MANAGERS = frozenset({*MARKETING, Role.SERVICE})
MANAGE, READ = "campaigns:manage", "campaigns:read"
# One Path per parameter: FastAPI binds a Path object to the first parameter it is used for.
AudienceIdPath = Path(min_length=1, max_length=64)
TemplateIdPath = Path(min_length=1, max_length=64)
CampaignIdPath = Path(min_length=1, max_length=64)
Limit = Annotated[int, Query(ge=1, le=500)]
_WRITE_ERRORS = {404: _PROBLEM, 409: _PROBLEM, 422: _PROBLEM}


def _now() -> datetime:
    return datetime.now(UTC)


async def _once(request: Request, uow, identity: Identity, key: str, status: int,
                act: Callable[[], Awaitable[BaseModel]]) -> Any:
    """Run a POST's effect once per ``Idempotency-Key``: a retry gets the first answer."""
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    answer = await act()
    await idempotency.finish(uow, request, identity, key, status, answer)
    await uow.commit()
    return answer


# -- audiences -------------------------------------------------------------------------------------

@router.post("/audiences", status_code=201, response_model=AudienceRead, responses=_WRITE_ERRORS)
async def create_audience(body: AudienceCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                          key: IdempotencyKey) -> Any:
    """A new audience: filters over the members' projection, combined with AND (unknown filters are
    refused). Its id is a slug you choose or a generated UUID."""
    identity.authorize(MANAGERS, scope=MANAGE)

    async def act() -> AudienceRead:
        row = await definitions.create_audience(
            uow, {"audience_id": body.audience_id, "name": body.name, "definition": body.definition.stored()},
            actor=identity.subject, at=_now())
        return AudienceRead.model_validate(row)
    return await _once(request, uow, identity, key, 201, act)


@router.get("/audiences", response_model=list[AudienceRead])
async def list_audiences(uow: ReadUow, identity: CurrentIdentity, limit: Limit = 100) -> list[AudienceRead]:
    identity.authorize(MANAGERS, scope=READ)
    return [AudienceRead.model_validate(r) for r in await uow.repo.audiences(limit)]


@router.get("/audiences/{audience_id}", response_model=AudienceRead, responses={404: _PROBLEM})
async def get_audience(uow: ReadUow, identity: CurrentIdentity, audience_id: str = AudienceIdPath) -> AudienceRead:
    identity.authorize(MANAGERS, scope=READ)
    return AudienceRead.model_validate(await definitions.get_audience(uow, audience_id))


@router.put("/audiences/{audience_id}", response_model=AudienceRead, responses=_WRITE_ERRORS)
async def replace_audience(body: AudienceUpdate, uow: Uow, identity: CurrentIdentity,
                           audience_id: str = AudienceIdPath) -> AudienceRead:
    """Replace an audience's name and definition; campaigns using it see the change at their next run."""
    identity.authorize(MANAGERS, scope=MANAGE)
    row = await definitions.update_audience(uow, audience_id, {"name": body.name,
                                                               "definition": body.definition.stored()},
                                            version=body.version, at=_now())
    await uow.commit()
    return AudienceRead.model_validate(row)


@router.get("/audiences/{audience_id}/estimate", response_model=EstimateRead, responses={404: _PROBLEM})
async def estimate(uow: ReadUow, identity: CurrentIdentity, audience_id: str = AudienceIdPath,
                   channel: Literal["email", "sms", "webhook", "notification"] | None = None) -> EstimateRead:
    """How many members match now; with a channel that needs consent (email, sms), only those who gave it."""
    identity.authorize(MANAGERS, scope=READ)
    at = _now()
    size = await definitions.estimate(uow, audience_id, channel, at)
    return EstimateRead(audience_id=audience_id, size=size, channel=channel, as_of=at)


# -- templates -------------------------------------------------------------------------------------

def _template_fields(body: TemplateCreate | TemplateUpdate) -> dict[str, Any]:
    contents = {locale: parts.model_dump(exclude_none=True) for locale, parts in body.contents.items()}
    return {"name": body.name, "channel": body.channel, "contents": contents}


@router.post("/templates", status_code=201, response_model=TemplateRead, responses=_WRITE_ERRORS)
async def create_template(body: TemplateCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                          key: IdempotencyKey) -> Any:
    """A new message template: Jinja2 parts per locale (zh-CN, en), checked for the channel and in
    the sandbox before it is saved (422 with the reason)."""
    identity.authorize(MANAGERS, scope=MANAGE)

    async def act() -> TemplateRead:
        row = await definitions.create_template(uow, {"template_id": body.template_id, **_template_fields(body)},
                                                actor=identity.subject, at=_now())
        return TemplateRead.model_validate(row)
    return await _once(request, uow, identity, key, 201, act)


@router.get("/templates", response_model=list[TemplateRead])
async def list_templates(uow: ReadUow, identity: CurrentIdentity, limit: Limit = 100) -> list[TemplateRead]:
    identity.authorize(MANAGERS, scope=READ)
    return [TemplateRead.model_validate(r) for r in await uow.repo.templates(limit)]


@router.get("/templates/{template_id}", response_model=TemplateRead, responses={404: _PROBLEM})
async def get_template(uow: ReadUow, identity: CurrentIdentity, template_id: str = TemplateIdPath) -> TemplateRead:
    identity.authorize(MANAGERS, scope=READ)
    return TemplateRead.model_validate(await definitions.get_template(uow, template_id))


@router.put("/templates/{template_id}", response_model=TemplateRead, responses=_WRITE_ERRORS)
async def replace_template(body: TemplateUpdate, uow: Uow, identity: CurrentIdentity,
                           template_id: str = TemplateIdPath) -> TemplateRead:
    identity.authorize(MANAGERS, scope=MANAGE)
    row = await definitions.update_template(uow, template_id, _template_fields(body), version=body.version,
                                            at=_now())
    await uow.commit()
    return TemplateRead.model_validate(row)


@router.post("/templates/{template_id}/preview", response_model=PreviewRead, responses={404: _PROBLEM, 422: _PROBLEM})
async def preview(body: PreviewRequest, request: Request, uow: ReadUow, identity: CurrentIdentity,
                  template_id: str = TemplateIdPath) -> PreviewRead:
    """The template rendered with sample values; with ``customer_id``, that member's tier, points
    balance and locale (the name stays the sample's: no personal data is shown). Changes nothing."""
    identity.authorize(MANAGERS, scope=READ)
    template, locale, rendered = await definitions.preview(
        uow, template_id, locale=body.locale, customer_id=body.customer_id, variables=body.variables,
        default_locale=resources(request).settings.default_locale)
    return PreviewRead(template_id=template_id, channel=template["channel"], locale=locale, **asdict(rendered))


# -- campaigns -------------------------------------------------------------------------------------

@router.post("/campaigns", status_code=201, response_model=CampaignRead, responses=_WRITE_ERRORS)
async def create_campaign(body: CampaignCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                          key: IdempotencyKey) -> Any:
    """A new campaign, as a draft: it sends nothing until activated."""
    identity.authorize(MANAGERS, scope=MANAGE)

    async def act() -> CampaignRead:
        row = await definitions.create_campaign(uow, body.stored(), actor=identity.subject, at=_now())
        return CampaignRead.model_validate(row)
    return await _once(request, uow, identity, key, 201, act)


@router.get("/campaigns", response_model=CampaignPage, responses={422: _PROBLEM})
async def list_campaigns(uow: ReadUow, identity: CurrentIdentity, limit: Limit = 100,
                         status: Literal["draft", "awaiting_approval", "active", "paused", "completed"] | None = None,
                         cursor: Annotated[str | None, Query(max_length=200)] = None) -> CampaignPage:
    """Campaigns, newest first, a page at a time (``next_cursor``), optionally of one status."""
    identity.authorize(MANAGERS, scope=READ)
    rows, next_cursor = await definitions.list_campaigns(uow, status=status, cursor=cursor, limit=limit)
    return CampaignPage(items=[CampaignRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/campaigns/{campaign_id}", response_model=CampaignRead, responses={404: _PROBLEM})
async def get_campaign(uow: ReadUow, identity: CurrentIdentity, campaign_id: str = CampaignIdPath) -> CampaignRead:
    identity.authorize(MANAGERS, scope=READ)
    return CampaignRead.model_validate(await definitions.get_campaign(uow, campaign_id))


@router.put("/campaigns/{campaign_id}", response_model=CampaignRead, responses=_WRITE_ERRORS)
async def replace_campaign(body: CampaignUpdate, uow: Uow, identity: CurrentIdentity,
                           campaign_id: str = CampaignIdPath) -> CampaignRead:
    """Replace a draft's or a paused campaign's definition (409 otherwise); its estimate and any
    approval are dropped, so it must be activated again."""
    identity.authorize(MANAGERS, scope=MANAGE)
    row = await definitions.update_campaign(uow, campaign_id, body.stored(exclude={"version"}), version=body.version,
                                            at=_now())
    await uow.commit()
    return CampaignRead.model_validate(row)


def _lifecycle(action: str, roles: frozenset[Role], summary: str) -> None:
    async def route(request: Request, uow: Uow, identity: CurrentIdentity, key: IdempotencyKey,
                    campaign_id: str = CampaignIdPath) -> Any:
        identity.authorize(roles, scope=MANAGE)
        threshold = resources(request).settings.approval_audience_size

        async def act() -> CampaignRead:
            at = _now()
            if action == "activate":
                row = await definitions.activate(uow, campaign_id, approval_threshold=threshold, at=at)
            elif action == "approve":
                row = await definitions.approve(uow, campaign_id, actor=identity.subject, at=at)
            elif action == "pause":
                row = await definitions.pause(uow, campaign_id, at=at)
            else:
                row = await definitions.resume(uow, campaign_id, approval_threshold=threshold, at=at)
            return CampaignRead.model_validate(row)
        return await _once(request, uow, identity, key, 200, act)

    route.__name__ = f"{action}_campaign"
    route.__doc__ = summary + " Requires ``Idempotency-Key``."
    router.add_api_route(f"/campaigns/{{campaign_id}}/{action}", route, methods=["POST"], response_model=CampaignRead,
                         responses={404: _PROBLEM, 409: {**_PROBLEM, "description": "Not from its current status"},
                                    422: _PROBLEM})


_lifecycle("activate", MANAGERS, "Estimate the audience now and go live; above the approval threshold "
                                 "(APPROVAL_AUDIENCE_SIZE) the campaign waits for a supervisor (awaiting_approval).")
_lifecycle("approve", SUPERVISOR, "A supervisor lets a campaign awaiting approval go live (active).")
_lifecycle("pause", MANAGERS, "Stop sending (contacts planned stay pending until it resumes).")
_lifecycle("resume", MANAGERS, "Back to where activation left it (active, or awaiting approval).")
