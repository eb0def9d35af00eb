"""The current policy document, parsed once per version and reused for up to a second.

A ticket opened within a second of a policy change on another replica may still get the
previous targets; tickets are never re-timed by a policy change anyway.
"""

from __future__ import annotations

import time
from typing import Any

from crm_shared.uow import UnitOfWork

from crm_tickets.domain.policy import DEFAULT_POLICY, TicketsPolicy


class PolicyStore:
    MAX_AGE_S = 1.0

    def __init__(self) -> None:
        self._parsed: tuple[int, TicketsPolicy] | None = None
        self._checked_at = 0.0

    @staticmethod
    async def seed(uow: UnitOfWork[Any]) -> None:
        """The default policy is version 1 (the caller commits)."""
        await uow.repo.seed_policy(DEFAULT_POLICY.model_dump_json())

    def forget(self) -> None:
        self._checked_at = 0.0

    async def current(self, uow: UnitOfWork[Any]) -> tuple[int, TicketsPolicy]:
        if self._parsed is not None and time.monotonic() - self._checked_at < self.MAX_AGE_S:
            return self._parsed
        version = await uow.repo.policy_version()
        if self._parsed is None or self._parsed[0] != version:
            config = await uow.repo.policy_config(version)
            policy = TicketsPolicy.model_validate(config) if config is not None else DEFAULT_POLICY
            self._parsed = (version, policy)
        self._checked_at = time.monotonic()
        return self._parsed
