"""The console session's pure parts: reading the cookie, the CSRF token, and which credential wins."""

from __future__ import annotations

import asyncio

import pytest
from crm_gateway.authn import ApiKeyStore, Authenticator, Credentials, CsrfRefused, CsrfTokens, TokenVerifier
from crm_gateway.session import sign_in_methods
from crm_gateway.settings import GatewaySettings
from crm_shared.auth import Role, Unauthenticated, mint_user_token
from pydantic import ValidationError

SECRET = "unit-test-jwt-secret-0123456789abcdefghijklmnop"
SETTINGS = GatewaySettings(jwt_secret=SECRET)


def _token(role: str = "agent", sub: str = "li.na") -> str:
    return mint_user_token(secret=SECRET, issuer="crm-dev", audience="crm", role=role, subject=sub)


def _authenticator() -> Authenticator:
    # No JWKS URL and no API key presented: neither the HTTP session nor the database is touched.
    return Authenticator(TokenVerifier(SETTINGS, None), ApiKeyStore(None, 5.0), CsrfTokens("auth-secret-" * 4))


def _headers(**named: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in named.items()]


def test_the_session_cookie_is_read_among_others_and_only_by_its_exact_name():
    assert Credentials.of(_headers(cookie="a=1; crm_session=tok.en.x; crm_csrf=c")).session_token == "tok.en.x"
    assert Credentials.of(_headers(cookie="xcrm_session=nope; crm_session_old=nope")).session_token is None
    assert Credentials.of(_headers(cookie="crm_session=")).session_token is None
    assert not Credentials.of(_headers(cookie="crm_session=t", authorization="Bearer x")).uses_session
    assert not Credentials.of(_headers(cookie="crm_session=t", x_api_key="k")).uses_session


def test_the_csrf_token_is_bound_to_the_session_and_to_the_gateways_secret():
    tokens, other = CsrfTokens("secret-one-" * 4), CsrfTokens("secret-two-" * 4)
    csrf = tokens.token_for("session-a")
    assert csrf == tokens.token_for("session-a") and "=" not in csrf and len(csrf) == 43
    assert tokens.matches("session-a", csrf)
    assert not tokens.matches("session-b", csrf)
    assert not tokens.matches("session-a", other.token_for("session-a"))
    assert not tokens.matches("session-a", None) and not tokens.matches("session-a", "")


def test_a_cookie_authenticates_reads_and_writes_need_the_csrf_token():
    authenticator, token = _authenticator(), _token()
    csrf = authenticator.csrf.token_for(token)
    cookie = f"crm_session={token}"

    async def run(method: str, **headers: str):
        return await authenticator.authenticate(_headers(cookie=cookie, **headers), method)

    assert asyncio.run(run("GET")).subject == "li.na"
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        with pytest.raises(CsrfRefused) as refused:
            asyncio.run(run(method))
        assert refused.value.status == 403 and refused.value.detail.startswith("CSRF token missing or wrong")
        with pytest.raises(CsrfRefused):
            asyncio.run(run(method, x_csrf_token=authenticator.csrf.token_for(_token(sub="someone.else"))))
        assert asyncio.run(run(method, x_csrf_token=csrf)).role is Role.AGENT
    # A bearer caller needs no CSRF token, even with a stray cookie: the header wins.
    bearer = asyncio.run(authenticator.authenticate(
        _headers(cookie="crm_session=garbage", authorization=f"Bearer {_token(sub='app')}"), "POST"))
    assert bearer.subject == "app"
    with pytest.raises(Unauthenticated):
        asyncio.run(authenticator.authenticate(_headers(cookie="crm_session=not-a-jwt"), "GET"))
    with pytest.raises(Unauthenticated, match="session cookie"):
        asyncio.run(authenticator.authenticate(_headers(cookie="other=1"), "GET"))


def test_sign_in_methods_follow_the_environment_and_the_oidc_settings():
    assert sign_in_methods(GatewaySettings(environment="dev")) == ["dev"]
    assert sign_in_methods(GatewaySettings(environment="test")) == ["dev"]
    oidc = dict(oidc_issuer_url="https://idp.example", oidc_client_id="crm-console",
                oidc_redirect_url="https://crm.example/v1/session/oidc/callback")
    assert sign_in_methods(GatewaySettings(environment="test", **oidc)) == ["oidc"]
    prod = dict(environment="prod", auth_secret="a-real-gateway-secret-0123456789abcdef",
                jwt_jwks_url="https://idp.example/jwks")
    assert sign_in_methods(GatewaySettings(**prod)) == []
    assert sign_in_methods(GatewaySettings(**prod, **oidc)) == ["oidc"]
    assert not GatewaySettings(**prod).dev_sign_in_enabled and GatewaySettings(**prod).secure_cookies
    assert not GatewaySettings(environment="test").secure_cookies
    with pytest.raises(ValidationError, match="OIDC_CLIENT_ID"):
        GatewaySettings(oidc_issuer_url="https://idp.example", oidc_redirect_url="https://crm.example/cb")
    with pytest.raises(ValidationError, match="openid"):
        GatewaySettings(**oidc, oidc_scopes="profile")
