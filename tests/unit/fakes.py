"""An in-memory unit of work for use-case tests of the unit tier.

It stands in for our own adapter (``crm_shared.uow.UnitOfWork``), never for PostgreSQL or the
broker as such: the same use cases run on the real unit of work in the service tier. A service's
in-memory repository (``tests/unit/<service>/fakes.py``) keeps rows in dicts and implements the
methods of its ``repository.py`` that its use cases call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from crm_shared.uow import InboxKey, KeyInFlight, KeyReused, StoredAnswer

R = TypeVar("R")


class FakeUnitOfWork(Generic[R]):
    """Records what a use case published and whether it committed; rollback forgets the events."""

    def __init__(self, repo: R) -> None:
        self.repo = repo
        self.published: list[Any] = []  # CloudEvents of committed work
        self.pending: list[Any] = []
        self.commits = 0
        self._inbox: set[InboxKey] = set()
        self._answers: dict[tuple[str, str], tuple[bytes, StoredAnswer]] = {}
        self.in_flight: set[tuple[str, str]] = set()  # keys a concurrent request holds

    async def publish(self, events: Sequence[Any]) -> None:
        self.pending.extend(events)

    async def claim_inbox(self, keys: Sequence[InboxKey]) -> set[InboxKey]:
        fresh = set(keys) - self._inbox
        self._inbox |= fresh
        return fresh

    async def stored_answer(self, owner: str, key: str, fingerprint: bytes) -> StoredAnswer | None:
        if (owner, key) in self.in_flight:
            raise KeyInFlight("a request with this Idempotency-Key is still being processed; retry later")
        stored = self._answers.get((owner, key))
        if stored is None:
            return None
        if stored[0] != fingerprint:
            raise KeyReused("this Idempotency-Key was used with a different request; use a new key")
        return stored[1]

    async def store_answer(self, owner: str, key: str, fingerprint: bytes, status: int, body: bytes) -> None:
        self._answers[(owner, key)] = (fingerprint, StoredAnswer(status, body))

    async def commit(self) -> None:
        self.commits += 1
        self.published.extend(self.pending)
        self.pending.clear()

    async def rollback(self) -> None:
        self.pending.clear()
