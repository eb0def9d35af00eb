"""crm_shared.auth: the roles' sets and the services' check of the forwarded identity."""

from __future__ import annotations

import asyncio

import pytest
from crm_shared.auth import (
    ALL_ROLES,
    IDENTITY_HEADER,
    MARKETING,
    Forbidden,
    Identity,
    IdentityCodec,
    IdentityVerifier,
    RequireIdentity,
    Role,
    identity_key,
)

SECRET = "unit-test-auth-secret-0123456789abcdef"
MARKETER = Identity(subject="m-1", role=Role.MARKETER)


def test_the_marketer_is_not_among_the_roles_of_routes_open_to_all_and_runs_campaigns_with_supervisors():
    assert ALL_ROLES == {Role.CUSTOMER, Role.AGENT, Role.SUPERVISOR, Role.SERVICE}
    assert Role.MARKETER not in ALL_ROLES and MARKETING == {Role.MARKETER, Role.SUPERVISOR}
    with pytest.raises(Forbidden):
        MARKETER.authorize(ALL_ROLES, scope="profiles:read", customer_id="c-1")
    MARKETER.authorize(MARKETING)
    # A marketer token round-trips through the claims the gateway forwards.
    assert Identity.from_claims(MARKETER.claims()) == MARKETER


def _app_behind(open_prefixes: tuple[str, ...] = ()):
    seen: list[tuple[str, Identity | None]] = []

    async def app(scope, receive, send):
        seen.append((scope["path"], scope.get("state", {}).get("identity")))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    verifier = IdentityVerifier(identity_key(SECRET, "campaigns"), "campaigns")
    return RequireIdentity(app, verifier, open_prefixes=open_prefixes), seen


def _call(app, path: str, headers: list[tuple[bytes, bytes]] = ()) -> int:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "http", "path": path, "headers": list(headers), "method": "GET"}, receive, send))
    return sent[0]["status"]


def test_paths_under_an_open_prefix_pass_without_identity_and_the_rest_still_need_one():
    app, seen = _app_behind(("/v1/public/",))
    assert _call(app, "/v1/public/unsubscribe/tok") == 200
    assert _call(app, "/v1/public/delivery-status") == 200
    assert seen == [("/v1/public/unsubscribe/tok", None), ("/v1/public/delivery-status", None)]
    # Not a prefix match on a word: /v1/publicity is not under /v1/public/.
    assert _call(app, "/v1/publicity") == 401
    assert _call(app, "/v1/campaigns") == 401
    signed = IdentityCodec(SECRET).encode(MARKETER, "campaigns")
    assert _call(app, "/v1/campaigns", [(IDENTITY_HEADER.encode(), signed.encode())]) == 200
    assert seen[-1] == ("/v1/campaigns", MARKETER)


def test_by_default_nothing_under_v1_is_open():
    app, seen = _app_behind()
    assert _call(app, "/v1/public/unsubscribe/tok") == 401
    assert _call(app, "/livez") == 200  # outside /v1/: probes stay open, as before
    assert seen == [("/livez", None)]


def test_an_open_prefix_must_be_a_whole_v1_segment():
    for bad in ("/v1/public", "/public/", "/v1"):
        with pytest.raises(ValueError):
            _app_behind((bad,))
