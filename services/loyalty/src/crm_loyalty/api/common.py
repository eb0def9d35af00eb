"""What the loyalty routes share: the units of work they are given, the customer id in a path, and
the programme store of the running app."""

from __future__ import annotations

from crm_shared.uow import uow_dependency
from fastapi import Path, Request

from crm_loyalty.repository import LoyaltyRepository
from crm_loyalty.usecases.common import ProgrammeStore

Uow = uow_dependency(LoyaltyRepository)
ReadUow = uow_dependency(LoyaltyRepository, read_only=True)
CustomerIdPath = Path(min_length=1, max_length=100)


def programme_store(request: Request) -> ProgrammeStore:
    return request.app.state.resources.store
