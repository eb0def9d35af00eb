"""The merge, unmerge and erasure refusals of domain/ (pure), with the problem each becomes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from crm_profile.domain.erasure import MAX_MERGED, SCRUB, erasure_group, refuse_duplicate
from crm_profile.domain.merges import refuse_merge, refuse_unmerge
from crm_profile.domain.records import GroupMember, MergeCandidate
from crm_profile.usecases import identity, merges
from crm_shared.errors import ConflictError, NotFoundError, RuleViolation

from tests.unit.fakes import FakeUnitOfWork
from tests.unit.profile.fakes import InMemoryProfileRepository
from tests.unit.profile.scenarios import CURRENCY, VAULT, seed

pytestmark = pytest.mark.unit
AT = datetime(2026, 1, 1, tzinfo=UTC)


def candidate(customer_id: str, *, email: bytes | None = b"e", erased: bool = False,
              merged_into: str | None = None) -> MergeCandidate:
    return MergeCandidate(customer_id, email, None, AT if erased else None, merged_into, 0, 0, None, None)


def test_an_erased_profile_is_neither_merged_nor_unmerged():
    with pytest.raises(RuleViolation, match="'b' was erased") as refused:
        refuse_merge("a", "b", {"a": candidate("a"), "b": candidate("b", erased=True)}, "email")
    assert refused.value.code == "unprocessable-content"
    with pytest.raises(RuleViolation, match="'a' was erased"):
        refuse_unmerge("a", "b", {"a": candidate("a", erased=True), "b": candidate("b", merged_into="a")})


def test_a_survivor_merged_since_must_be_unmerged_first_and_an_unknown_profile_is_a_404():
    with pytest.raises(ConflictError, match="undo that merge first"):
        refuse_unmerge("a", "b", {"a": candidate("a", merged_into="c"), "b": candidate("b", merged_into="a")})
    with pytest.raises(NotFoundError, match="'b' does not exist"):
        refuse_unmerge("a", "b", {"a": candidate("a")})
    with pytest.raises(RuleViolation, match="usable phone"):  # no phone on either: nothing shared
        refuse_merge("a", "b", {"a": candidate("a"), "b": candidate("b")}, "phone")


def test_an_erasure_names_the_survivor_of_a_duplicate_and_refuses_cycles_and_huge_groups():
    with pytest.raises(ConflictError, match="merge cycle") as cycle:
        refuse_duplicate("a", None)
    assert cycle.value.code == "conflict"
    refuse_duplicate("a", "a")
    with pytest.raises(RuleViolation, match=f"more than {MAX_MERGED} profiles"):
        erasure_group("a", "a", [GroupMember("a", None, None)] +
                      [GroupMember(f"d-{i}", None, "a") for i in range(MAX_MERGED + 1)])
    with pytest.raises(ConflictError, match="just merged") as merged:
        erasure_group("a", "a", [GroupMember("a", None, "z")])
    assert (merged.value.code, merged.value.extensions) == ("merged-profile", {"survivor_id": "z"})
    again = erasure_group("a", "a", [GroupMember("a", AT, None), GroupMember("b", AT, "a")])
    assert (again.merged, again.newly_erased, again.erased_at) == (["b"], False, AT)


def test_what_a_late_event_about_an_erased_customer_loses():
    assert set(SCRUB["commerce.customer.updated"]) == {"email", "phone", "name", "birthday", "gender", "city",
                                                       "consents", "locale", "time_zone"}
    assert SCRUB["commerce.interaction.recorded"] == {"attributes": {}}
    assert SCRUB["crm.loyalty.points.adjusted"] == {"reason": None}
    assert "commerce.order.paid" not in SCRUB


async def test_an_unmerge_of_a_merge_that_recorded_nothing_is_refused():
    repo = InMemoryProfileRepository()
    uow = FakeUnitOfWork(repo)
    await seed(uow, ("c-1", "mei@example.com"), ("c-2", "mei@example.com"))
    await merges.merge_profiles(uow, survivor="c-1", merged="c-2", identifier="email", reason="r", actor="s",
                                currency=CURRENCY)
    repo.merges[-1]["moved"] = {}  # as merges made before migration 0012 are journaled
    with pytest.raises(RuleViolation, match="predates unmerging"):
        await merges.unmerge_profiles(uow, survivor="c-1", merged="c-2", reason="r", actor="s", currency=CURRENCY)


async def test_an_unknown_profile_is_not_found():
    uow = FakeUnitOfWork(InMemoryProfileRepository())
    with pytest.raises(NotFoundError, match="customer 'c-9' does not exist"):
        await identity.read_profile(uow, VAULT, "c-9")
