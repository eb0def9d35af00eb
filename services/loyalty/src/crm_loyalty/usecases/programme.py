"""The programme: reading its versions and saving a new one (supervisors)."""

from __future__ import annotations

from typing import Any

from crm_shared.errors import PreconditionFailed

from crm_loyalty.domain.programme import Programme
from crm_loyalty.usecases.common import Uow, now


class VersionMismatch(PreconditionFailed):
    """The caller's ``If-Match`` names another version than the latest (412)."""


async def programme_versions(uow: Uow, limit: int = 1) -> list[dict[str, Any]]:
    """The newest ``limit`` versions, newest first (the first is the one in force)."""
    return await uow.repo.latest_programmes(limit)


async def replace_programme(uow: Uow, programme: Programme, *, note: str | None, actor: str,
                            if_match: str | None) -> dict[str, Any]:
    """Save a new version, effective from now on (never retroactively). With ``if_match``, refuse
    the change if the latest version is another. The caller commits, then forgets its cache."""
    await uow.repo.lock_programme()
    latest = (await uow.repo.latest_programmes(1))[0]
    if if_match is not None and if_match.strip('"W/') != str(latest["version"]):
        raise VersionMismatch(f"the programme is at version {latest['version']}, not {if_match}; reload and retry")
    return await uow.repo.add_programme_version(programme.model_dump_json(), at=now(), actor=actor, note=note)
