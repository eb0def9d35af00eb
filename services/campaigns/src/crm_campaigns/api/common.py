"""What the campaigns routes share: the units of work they are given and the running resources."""

from __future__ import annotations

from crm_shared.uow import uow_dependency
from fastapi import Request

from crm_campaigns.repository import CampaignsRepository

Uow = uow_dependency(CampaignsRepository)
ReadUow = uow_dependency(CampaignsRepository, read_only=True)


def resources(request: Request):
    return request.app.state.resources
