"""Use-case scenarios of the profile, each ``async def scenario_x(uow)`` on a fresh archive.

They run on the in-memory repository (test_usecases.py) and on the real unit of work over a
migrated database (tests/service/profile/test_usecases_on_postgres.py). Each works in one unit of
work and never commits: the assertions read what the use cases returned and published.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from crm_profile.domain.pii import PiiVault
from crm_profile.domain.records import IdentityChange
from crm_profile.usecases import customers, identity, merges, privacy, segment_definitions
from crm_shared.errors import ConflictError, NotFoundError, RuleViolation

VAULT = PiiVault(b"unit-test-pii-key-0123456789abcd")
CURRENCY = "EUR"
RULE = {"field": "net_spent", "op": ">=", "value": 1000}


async def published_types(uow) -> list[str]:
    """The types of the events this unit of work wrote to the outbox, in order."""
    if hasattr(uow, "pending"):  # the in-memory unit of work
        return [e.type for e in [*uow.published, *uow.pending]]
    from sqlalchemy import text

    return [row.event_type for row in await uow.connection.execute(text("SELECT event_type FROM outbox ORDER BY id"))]


async def published_consents(uow) -> list[tuple[str, str, bool, str]]:
    """(customer, channel, granted, source) of every crm.profile.consent.changed written, in order."""
    if hasattr(uow, "pending"):
        data = [e.data for e in [*uow.published, *uow.pending] if e.type == "crm.profile.consent.changed"]
    else:
        import orjson
        from sqlalchemy import text

        data = [orjson.loads(row.value) for row in await uow.connection.execute(text(
            "SELECT value FROM outbox WHERE event_type = 'crm.profile.consent.changed' ORDER BY id"))]
    return [(d["customer_id"], d["channel"], d["granted"], d["source"]) for d in data]


async def seed(uow, *people: tuple[str, str | None]) -> None:
    """Customers registered by the shop: (customer id, e-mail)."""
    at = datetime(2026, 1, 5, tzinfo=UTC)
    await identity.record_identities(uow, VAULT, [
        IdentityChange(customer_id=c, changed_at=at, source="shop", email=email, name=f"Name {c}",
                       consents={"email": True}) for c, email in people], currency=CURRENCY, traceparents={})


async def scenario_merge_and_unmerge(uow) -> None:
    await seed(uow, ("c-1", "mei@example.com"), ("c-2", "mei@example.com"), ("c-3", "other@example.com"))
    assert await merges.find_duplicates(uow, "c-1") == [("c-2", ["email"])]
    merged = await merges.merge_profiles(uow, survivor="c-1", merged="c-2", identifier="email", reason="same person",
                                         actor="sup-1", currency=CURRENCY)
    assert merged.order_count == 0
    assert [c for c, _ in await merges.find_duplicates(uow, "c-1")] == []
    unmerged = await merges.unmerge_profiles(uow, survivor="c-1", merged="c-2", reason="not the same",
                                             actor="sup-1", currency=CURRENCY)
    assert (unmerged.order_count, unmerged.unmerged_order_count) == (0, 0)
    types = await published_types(uow)
    assert types.index("crm.profile.customer.merged") < types.index("crm.profile.customer.unmerged")
    assert types.count("crm.profile.customer.updated") == 3 + 1 + 2  # registrations, merge, unmerge


async def scenario_merge_refusals(uow) -> None:
    await seed(uow, ("c-1", "mei@example.com"), ("c-2", "mei@example.com"), ("c-3", "other@example.com"))
    with pytest.raises(RuleViolation, match="into itself") as refused:
        await merges.merge_profiles(uow, survivor="c-1", merged="c-1", identifier="email", reason="r", actor="s",
                                    currency=CURRENCY)
    assert (refused.value.code, refused.value.title) == ("unprocessable-content", "Unprocessable Content")
    with pytest.raises(NotFoundError, match="'c-9' does not exist"):
        await merges.merge_profiles(uow, survivor="c-1", merged="c-9", identifier="email", reason="r", actor="s",
                                    currency=CURRENCY)
    with pytest.raises(RuleViolation, match="do not share a usable email"):
        await merges.merge_profiles(uow, survivor="c-1", merged="c-3", identifier="email", reason="r", actor="s",
                                    currency=CURRENCY)
    with pytest.raises(NotFoundError, match="'c-2' is not merged into 'c-1'"):
        await merges.unmerge_profiles(uow, survivor="c-1", merged="c-2", reason="r", actor="s", currency=CURRENCY)
    await merges.merge_profiles(uow, survivor="c-1", merged="c-2", identifier="email", reason="r", actor="s",
                                currency=CURRENCY)
    with pytest.raises(ConflictError, match="already merged into 'c-1'") as conflict:
        await merges.merge_profiles(uow, survivor="c-1", merged="c-2", identifier="email", reason="r", actor="s",
                                    currency=CURRENCY)
    assert conflict.value.code == "conflict"


async def scenario_erasure_covers_the_merged_and_refuses_a_duplicate(uow) -> None:
    await seed(uow, ("c-1", "mei@example.com"), ("c-2", "mei@example.com"))
    await merges.merge_profiles(uow, survivor="c-1", merged="c-2", identifier="email", reason="r", actor="s",
                                currency=CURRENCY)
    with pytest.raises(ConflictError) as refused:
        await privacy.erase_profile(uow, "c-2", actor="sup-1", role="supervisor", reason="asked", currency=CURRENCY)
    assert (refused.value.code, refused.value.extensions) == ("merged-profile", {"survivor_id": "c-1"})
    with pytest.raises(NotFoundError, match="customer 'c-9' does not exist"):
        await privacy.erase_profile(uow, "c-9", actor="sup-1", role="supervisor", reason="asked", currency=CURRENCY)
    first = await privacy.erase_profile(uow, "c-1", actor="sup-1", role="supervisor", reason="asked",
                                        currency=CURRENCY)
    assert first.merged_customer_ids == ["c-2"]
    again = await privacy.erase_profile(uow, "c-1", actor="sup-1", role="supervisor", reason="asked",
                                        currency=CURRENCY)
    assert again == first  # harmless: the first erasure's time, announced once
    assert (await published_types(uow)).count("crm.profile.customer.erased") == 1


async def scenario_agents_edit_and_note_until_erased(uow) -> None:
    await seed(uow, ("c-1", "mei@example.com"))
    with pytest.raises(NotFoundError, match="customer 'c-9' does not exist"):
        await customers.add_note(uow, "c-9", author="agent-1", body="hello")
    with pytest.raises(NotFoundError):
        await identity.update_profile(uow, VAULT, customer_id="c-9", actor="agent-1", currency=CURRENCY, city="Rome")
    note = await customers.add_note(uow, "c-1", author="agent-1", body="called about an order")
    assert [n["note_id"] for n in await customers.list_notes(uow, "c-1", 10)] == [note["note_id"]]
    await identity.update_profile(uow, VAULT, customer_id="c-1", actor="agent-1", currency=CURRENCY,
                                  birthday=date(1990, 4, 2), external_ids={"erp": "E-1"})
    await identity.update_profile(uow, VAULT, customer_id="c-1", actor="agent-1", currency=CURRENCY,
                                  birthday=date(1991, 4, 2))  # same month and day: not announced again
    assert (await published_types(uow)).count("crm.profile.customer.birthday_changed") == 1
    await privacy.erase_profile(uow, "c-1", actor="sup-1", role="supervisor", reason="asked", currency=CURRENCY)
    for write in (customers.add_note(uow, "c-1", author="agent-1", body="x"),
                  identity.update_profile(uow, VAULT, customer_id="c-1", actor="agent-1", currency=CURRENCY,
                                          city="Rome")):
        with pytest.raises(ConflictError, match="was erased") as refused:
            await write
        assert refused.value.code == "customer-erased"


async def scenario_every_consent_change_is_announced_once(uow) -> None:
    at = datetime(2026, 2, 1, tzinfo=UTC)
    await identity.record_identities(uow, VAULT, [
        IdentityChange(customer_id="c-1", changed_at=at, source="shop", consents={"email": True, "sms": False},
                       consent_reason="registration"),
        IdentityChange(customer_id="c-1", changed_at=at, source="shop", consents={"email": True}),  # no change
        IdentityChange(customer_id="c-2", changed_at=at, source="shop", consents={"sms": True})],
        currency=CURRENCY, traceparents={})
    assert await published_consents(uow) == [("c-1", "email", True, "registration"),
                                             ("c-1", "sms", False, "registration"), ("c-2", "sms", True, "update")]
    await identity.update_profile(uow, VAULT, customer_id="c-1", actor="agent-1", currency=CURRENCY,
                                  consents={"email": True, "sms": True})  # only sms changes
    assert (await published_consents(uow))[3:] == [("c-1", "sms", True, "agent")]
    changed = await identity.withdraw_consents(uow, VAULT, [("c-1", "email", at), ("c-1", "email", at),
                                                            ("c-9", "email", at)], traceparents={})
    assert changed == 1  # the second is no change, c-9 is unknown (and no profile is created for it)
    assert not await uow.repo.customer_exists("c-9")
    assert (await published_consents(uow))[4:] == [("c-1", "email", False, "unsubscribe")]
    await privacy.erase_profile(uow, "c-1", actor="sup-1", role="supervisor", reason="asked", currency=CURRENCY)
    assert (await published_consents(uow))[5:] == [("c-1", "sms", False, "erasure")]  # e-mail was withdrawn
    assert await identity.withdraw_consents(uow, VAULT, [("c-1", "sms", at)], traceparents={}) == 0  # erased


async def scenario_segment_definitions(uow) -> None:
    with pytest.raises(RuleViolation, match="reserved") as refused:
        await segment_definitions.create_segment(uow, segment_id="rfm-mine", name="x", description=None, rule=RULE,
                                                 created_by="sup-1", currency=CURRENCY)
    assert (refused.value.code, refused.value.title) == ("invalid-request", "Invalid request")
    row, members = await segment_definitions.create_segment(uow, segment_id="spenders", name="Spenders",
                                                            description=None, rule=RULE, created_by="sup-1",
                                                            currency=CURRENCY)
    assert (row["segment_id"], members) == ("spenders", 0)
    with pytest.raises(ConflictError, match="exists; PUT changes it"):
        await segment_definitions.create_segment(uow, segment_id="spenders", name="x", description=None, rule=RULE,
                                                 created_by="sup-1", currency=CURRENCY)
    row, _ = await segment_definitions.update_segment(uow, segment_id="spenders", name="Big spenders",
                                                      description="d", rule=RULE, currency=CURRENCY)
    assert row["name"] == "Big spenders"
    assert (await segment_definitions.get_segment(uow, "rfm:champions"))[0] is None
    with pytest.raises(NotFoundError, match="segment 'nope' does not exist"):
        await segment_definitions.update_segment(uow, segment_id="nope", name="x", description=None, rule=RULE,
                                                 currency=CURRENCY)
    await segment_definitions.delete_segment(uow, "spenders")
    with pytest.raises(NotFoundError):
        await segment_definitions.delete_segment(uow, "spenders")
    with pytest.raises(NotFoundError):
        await segment_definitions.get_segment(uow, "spenders")


SCENARIOS = [scenario_merge_and_unmerge, scenario_merge_refusals,
             scenario_erasure_covers_the_merged_and_refuses_a_duplicate, scenario_agents_edit_and_note_until_erased,
             scenario_segment_definitions, scenario_every_consent_change_is_announced_once]
