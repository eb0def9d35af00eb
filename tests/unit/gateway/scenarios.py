"""Scenarios of the gateway's use cases, run on the in-memory unit of work
(``tests/unit/gateway/test_usecases.py``) and on the real one over PostgreSQL
(``tests/service/gateway/test_gateway_usecases.py``): the same assertions on both.

Each scenario commits what a route would commit and returns the ids of the events it expects in
the outbox, in order; the caller checks them where its unit of work put them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from crm_gateway import usecases
from crm_gateway.domain import api_keys
from crm_gateway.domain.interactions import event_id_for
from crm_shared.auth import Identity, Role
from crm_shared.errors import NotFoundError, NotPermitted, RuleViolation

from tests.harness.events import interaction, order_paid

BACK_OFFICE = Identity(subject="erp", role=Role.SERVICE,
                       scopes=frozenset({"interactions:write", "orders:write", "customers:write"}))
TRACKER = Identity(subject="apikey:0123456789abcdef", role=Role.SERVICE, scopes=frozenset({"interactions:write"}),
                   client="storefront-tracker")
NO_EVENT_SCOPES = Identity(subject="reporting", role=Role.SERVICE, scopes=frozenset({"profiles:read"}))
AGENT = Identity(subject="agent-7", role=Role.AGENT)
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LIMITS = {"batch_max": 3, "max_record_bytes": 1_000_000}


async def accept(uow, identity, batch, **limits):
    return await usecases.accept_event_batch(uow, identity, batch, **{**LIMITS, **limits})


async def scenario_a_mixed_batch_queues_exactly_the_valid_events(uow):
    view, paid = interaction("c-1"), order_paid("c-1", amount="19.90")
    outcome = await accept(uow, BACK_OFFICE, [view.to_structured(), {"type": "commerce.order.paid"},
                                              paid.to_structured()])
    assert outcome.accepted == [view.id, paid.id]
    assert [(r.index, r.id) for r in outcome.rejected] == [(1, None)] and outcome.rejected[0].reason
    await uow.commit()
    return [view.id, paid.id]


async def scenario_one_event_object_is_a_batch_of_one(uow):
    view = interaction("c-1")
    outcome = await accept(uow, TRACKER, view.to_structured())
    assert outcome.accepted == [view.id] and outcome.rejected == []
    await uow.commit()
    return [view.id]


async def scenario_a_batch_with_nothing_valid_queues_nothing(uow):
    outcome = await accept(uow, TRACKER, [order_paid("c-1").to_structured()])  # orders need orders:write
    assert outcome.accepted == [] and "orders:write" in outcome.rejected[0].reason
    await uow.commit()
    return []


async def scenario_a_caller_without_event_scopes_is_refused(uow):
    with pytest.raises(NotPermitted) as refused:
        await accept(uow, NO_EVENT_SCOPES, [interaction("c-1").to_structured()])
    assert refused.value.status == 403 and refused.value.code == "forbidden"
    assert "none of the event scopes" in refused.value.detail
    await uow.commit()
    return []


async def scenario_an_empty_or_shapeless_batch_is_invalid(uow):
    for batch in ([], "events", 7):
        with pytest.raises(RuleViolation) as invalid:
            await accept(uow, TRACKER, batch)
        assert (invalid.value.status, invalid.value.title, invalid.value.code) == (422, "Invalid request",
                                                                                   "invalid-request")
        assert invalid.value.detail == "send a JSON array of CloudEvents"
    await uow.commit()
    return []


async def scenario_too_many_events_are_content_too_large(uow):
    with pytest.raises(usecases.ContentTooLarge) as refused:
        await accept(uow, TRACKER, [interaction("c-1").to_structured() for _ in range(4)])
    problem = refused.value
    assert (problem.status, problem.title, problem.code) == (413, "Content Too Large", "content-too-large")
    assert problem.detail == "a batch holds at most 3 events; split it" and problem.extensions == {}
    await uow.commit()
    return []


async def scenario_an_event_too_large_for_kafka_refuses_the_whole_batch(uow):
    small, big = interaction("c-1"), interaction("c-1", attributes={"note": "x" * 4_000})
    with pytest.raises(usecases.ContentTooLarge) as refused:
        await accept(uow, TRACKER, [small.to_structured(), big.to_structured()], max_record_bytes=2_000)
    problem = refused.value
    assert (problem.status, problem.code, problem.extensions) == (413, "event-too-large",
                                                                  {"index": 1, "limit": 2_000})
    assert problem.detail.endswith("; nothing of this batch was stored")
    await uow.commit()  # whatever a route would do, nothing of the batch was queued
    return []


async def scenario_a_recorded_call_is_one_event_per_idempotency_key(uow):
    def record(key: str, **changes):
        fields = {"customer_id": "c-9", "identity": AGENT, "idempotency_key": key, "kind": "call",
                  "occurred_at": NOW - timedelta(minutes=3), "channel": None, "direction": "inbound",
                  "duration_s": 180, "ticket_id": "t-1", "now": NOW, "traceparent": None, **changes}
        return usecases.record_interaction(uow, **fields)

    event = await record("k-1")
    assert event.id == event_id_for(AGENT, "k-1") and event.type == "commerce.interaction.recorded"
    assert event.data["channel"] == "phone" and event.data["attributes"]["recorded_by"] == "agent-7"
    assert (await record("k-1")).id == event.id  # a retry is the same event
    await uow.commit()
    return [event.id, event.id]  # both are queued; consumers apply the id once


async def scenario_an_interaction_out_of_bounds_is_invalid(uow):
    for occurred_at, why in ((NOW + timedelta(hours=1), "occurred_at is in the future"),
                             (NOW - timedelta(days=400), "occurred_at is more than a year ago")):
        with pytest.raises(RuleViolation) as invalid:
            await usecases.record_interaction(
                uow, customer_id="c-9", identity=AGENT, idempotency_key="k", kind="chat", occurred_at=occurred_at,
                channel=None, direction="outbound", duration_s=None, ticket_id=None, now=NOW, traceparent=None)
        assert (invalid.value.title, invalid.value.code, invalid.value.detail) == ("Invalid request",
                                                                                   "invalid-request", why)
    await uow.commit()
    return []


async def scenario_api_keys_are_issued_listed_verified_and_revoked(uow):
    first = await usecases.create_api_key(uow, client="erp", scopes=["orders:write", "profiles:read", "orders:write"],
                                          created_by="sup-1", now=NOW)
    second = await usecases.create_api_key(uow, client="tracker", scopes=["interactions:write"], created_by="sup-2",
                                           now=NOW + timedelta(seconds=1))
    assert first["scopes"] == ["orders:write", "profiles:read"] and first["created_by"] == "sup-1"
    assert "secret_hash" not in first and api_keys.parse(first["key"])[0] == first["key_id"]
    await uow.commit()

    listed = await usecases.list_api_keys(uow)
    assert [k["key_id"] for k in listed] == [second["key_id"], first["key_id"]]  # newest first
    assert listed[1] == {k: v for k, v in first.items() if k != "key"} | {"revoked_at": None, "revoked_by": None}
    key_id, secret = api_keys.parse(first["key"])
    active = await uow.repo.active_api_key(key_id)
    assert active.client == "erp" and active.scopes == ("orders:write", "profiles:read")
    assert api_keys.secret_matches(secret, active.secret_hash)

    await usecases.revoke_api_key(uow, key_id, by="sup-2", now=NOW + timedelta(minutes=1))
    await usecases.revoke_api_key(uow, key_id, by="sup-3", now=NOW + timedelta(minutes=2))  # once is enough
    await uow.commit()
    assert await uow.repo.active_api_key(key_id) is None
    revoked = next(k for k in await usecases.list_api_keys(uow) if k["key_id"] == key_id)
    assert (revoked["revoked_by"], revoked["revoked_at"]) == ("sup-2", NOW + timedelta(minutes=1))
    return []


async def scenario_unknown_scopes_and_unknown_keys_are_refused(uow):
    with pytest.raises(RuleViolation) as invalid:
        await usecases.create_api_key(uow, client="old", scopes=["events:write", "profiles:read"], created_by="s",
                                      now=NOW)
    assert (invalid.value.status, invalid.value.title, invalid.value.code) == (422, "Invalid request",
                                                                               "invalid-request")
    assert invalid.value.detail.startswith("unknown scopes ['events:write']; known: [")
    with pytest.raises(NotFoundError) as unknown:
        await usecases.revoke_api_key(uow, "0" * 16, by="s", now=NOW)
    assert unknown.value.status == 404 and unknown.value.detail == f"API key {'0' * 16!r} does not exist"
    await uow.commit()
    assert await usecases.list_api_keys(uow) == []
    return []


SCENARIOS = [value for name, value in sorted(globals().items()) if name.startswith("scenario_")]
