"""The forwarded identity is signed per service: one service's key cannot speak for another.

Before, every service verified with the one shared AUTH_SECRET, so whoever held one service's
configuration could sign a supervisor for all of them.
"""

from __future__ import annotations

import time

import jwt
import pytest
from crm_gateway.settings import GatewaySettings
from crm_shared.auth import IDENTITY_HEADER, INTERNAL_ISSUER, Identity, IdentityCodec, Role, identity_key
from crm_shared.cli import main as crm_main
from crm_shared.settings import ServiceSettings
from pydantic import ValidationError

from tests.harness.events import new_customer_id
from tests.harness.infra import TEST_AUTH_SECRET

SUPERVISOR = Identity(subject="sup-1", role=Role.SUPERVISOR)
REAL = "9f1c4e7a2b8d6e0f3a5c7e9b1d3f5a7c9e1b3d5f"


def _signed(key: str, audience: str, *, iat: int, ttl_s: int = 60) -> dict[str, str]:
    claims = {**SUPERVISOR.claims(), "iss": INTERNAL_ISSUER, "aud": audience, "iat": iat, "exp": iat + ttl_s}
    return {IDENTITY_HEADER: jwt.encode(claims, key, algorithm="HS256")}


async def test_a_service_accepts_only_identities_signed_for_it_with_its_own_key(make_database, start_service):
    profile_key = identity_key(TEST_AUTH_SECRET, "profile")
    # The service holds only its own key: AUTH_SECRET here is some other value it never uses.
    service = start_service("profile", make_database("profile"), IDENTITY_KEY=profile_key,
                            AUTH_SECRET="not-the-gateways-secret-0123456789abcdef")
    gateway = IdentityCodec(TEST_AUTH_SECRET)
    url = f"/v1/profiles/{new_customer_id()}"
    now = int(time.time())
    async with service.client(identity=None) as http:
        async def status(headers: dict[str, str]) -> int:
            return (await http.get(url, headers=headers)).status_code

        # What the gateway signs for profile gets through (404: authenticated, no such customer).
        assert await status({IDENTITY_HEADER: gateway.encode(SUPERVISOR, "profile")}) == 404
        # What it signs for loyalty is refused here, though the same gateway signed it.
        assert await status({IDENTITY_HEADER: gateway.encode(SUPERVISOR, "loyalty")}) == 401
        # A compromised loyalty holds loyalty's key: whatever it signs is refused by profile.
        assert await status(_signed(identity_key(TEST_AUTH_SECRET, "loyalty"), "crm-profile", iat=now)) == 401
        # Short-lived: an expired one, or one minted to live a day, is refused even with the right key.
        assert await status(_signed(profile_key, "crm-profile", iat=now - 3600)) == 401
        assert await status(_signed(profile_key, "crm-profile", iat=now, ttl_s=86_400)) == 401
        assert await status(_signed(profile_key, "crm-profile", iat=now)) == 404


def test_each_service_gets_its_own_key_and_none_reveals_another():
    keys = {name: identity_key(REAL, name) for name in ("profile", "loyalty", "tickets", "churn")}
    assert len(set(keys.values())) == 4
    assert all(len(key) == 64 and REAL not in key for key in keys.values())
    assert identity_key(REAL, "profile") == keys["profile"]  # derived, so the gateway needs one secret


def test_crm_identity_key_prints_the_key_of_a_service(monkeypatch, capsys):
    monkeypatch.setenv("AUTH_SECRET", REAL)
    assert crm_main(["identity-key", "tickets"]) == 0
    assert capsys.readouterr().out.strip() == identity_key(REAL, "tickets")


def test_in_production_a_service_needs_its_identity_key_and_may_not_hold_the_gateways_secret():
    with pytest.raises(ValidationError, match="IDENTITY_KEY must be set in production"):
        ServiceSettings(service_name="loyalty", environment="prod")
    with pytest.raises(ValidationError, match="AUTH_SECRET is the gateway's signing secret"):
        ServiceSettings(service_name="loyalty", environment="prod", auth_secret=REAL,
                        identity_key=identity_key(REAL, "loyalty"))
    settings = ServiceSettings(service_name="loyalty", environment="prod", identity_key=identity_key(REAL, "loyalty"))
    assert settings.identity_verification_key() == identity_key(REAL, "loyalty")
    # The gateway signs, so it holds AUTH_SECRET and needs no IDENTITY_KEY.
    assert GatewaySettings(environment="prod", auth_secret=REAL, jwt_jwks_url="https://idp.example/jwks")
