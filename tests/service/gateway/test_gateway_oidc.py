"""The console's OIDC sign-in through a production-configured gateway and a fake identity provider
in its own process (tests/harness/oidc_provider.py): code flow with PKCE, redirects followed by hand."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from crm_shared.devstack import free_port

from tests.harness.oidc_provider import OidcProvider
from tests.service.gateway.test_gateway_session import PROD, set_cookies

CLIENT_SECRET = "a-confidential-client-secret-0123456789"


@pytest.fixture
def oidc_stack(gateway_stack, tmp_path):
    with OidcProvider(tmp_path, client_id="crm-console", client_secret=CLIENT_SECRET, audience="crm-api",
                      subject="agent-7", role="agent") as idp:
        port = free_port()
        stack = gateway_stack(upstreams=(), **PROD, HTTP_PORT=str(port), JWT_JWKS_URL=f"{idp.issuer}/jwks",
                              JWT_ISSUER=idp.issuer, JWT_AUDIENCE="crm-api", OIDC_ISSUER_URL=idp.issuer,
                              OIDC_CLIENT_ID="crm-console", OIDC_CLIENT_SECRET=CLIENT_SECRET,
                              OIDC_REDIRECT_URL=f"http://127.0.0.1:{port}/v1/session/oidc/callback")
        yield stack


async def start(http: httpx.AsyncClient, return_to: str = "/console/#/tickets") -> tuple[str, str]:
    """/login → the provider's /authorize → back: the state cookie and the callback URL's query."""
    login = await http.get("/v1/session/oidc/login", params={"return_to": return_to})
    assert login.status_code == 302, login.text
    state_cookie = set_cookies(login)["crm_oidc"]
    assert state_cookie["httponly"] is True and state_cookie["secure"] is True
    assert state_cookie["samesite"].lower() == "lax" and state_cookie["path"] == "/v1/session/oidc/"
    authorize = urlsplit(login.headers["location"])
    query = parse_qs(authorize.query)
    assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
    async with httpx.AsyncClient() as browser:
        approved = await browser.get(login.headers["location"])
    assert approved.status_code == 302
    back = urlsplit(approved.headers["location"])
    assert back.path == "/v1/session/oidc/callback"
    http.cookies.clear()
    return state_cookie["value"], back.query


async def test_a_production_sign_in_goes_through_the_provider_and_the_cookie_then_works(oidc_stack):
    async with oidc_stack.client() as http:
        config = await http.get("/v1/session/config")
        assert config.json() == {"environment": "prod", "methods": ["oidc"]}
        assert (await http.post("/v1/session/dev", json={"role": "agent", "name": "x"})).status_code == 404
        state_cookie, query = await start(http)
        callback = await http.get(f"/v1/session/oidc/callback?{query}", headers={"Cookie": f"crm_oidc={state_cookie}"})
        assert callback.status_code == 302, callback.text
        assert callback.headers["location"] == "/console/#/tickets"
        cookies = set_cookies(callback)
        session, csrf = cookies["crm_session"], cookies["crm_csrf"]
        assert session["httponly"] is True and session["secure"] is True and session["samesite"].lower() == "strict"
        assert csrf["secure"] is True and "httponly" not in csrf
        assert cookies["crm_oidc"]["max-age"] == "0"  # the state is used up
        me = await http.get("/v1/session", headers={"Cookie": f"crm_session={session['value']}"})
        assert me.status_code == 200, me.text
        assert (me.json()["subject"], me.json()["role"], me.json()["csrf_token"]) == ("agent-7", "agent",
                                                                                       csrf["value"])
        # The same callback again: the provider's code works once.
        again = await http.get(f"/v1/session/oidc/callback?{query}", headers={"Cookie": f"crm_oidc={state_cookie}"})
        assert again.status_code == 400 and "set-cookie" not in again.headers


async def test_a_wrong_state_a_missing_state_cookie_and_a_wrong_verifier_are_refused(oidc_stack):
    async with oidc_stack.client() as http:
        cookie_a, query_a = await start(http)
        cookie_b, query_b = await start(http)
        code_a = parse_qs(query_a)["code"][0]
        state_a = parse_qs(query_a)["state"][0]
        attempts = {
            "forged state": (f"code={code_a}&state=forged", cookie_a),
            "no state cookie": (query_a, None),
            "a tampered state cookie": (query_a, cookie_a[:-2] + ("AA" if not cookie_a.endswith("AA") else "BB")),
            # Code injection: B's code (issued for B's challenge) with A's state and cookie: A's
            # verifier does not match B's challenge, so the provider refuses the exchange.
            "another sign-in's code": (f"code={parse_qs(query_b)['code'][0]}&state={state_a}", cookie_a),
            "the provider's error": (f"error=access_denied&state={state_a}", cookie_a),
        }
        for what, (query, cookie) in attempts.items():
            headers = {"Cookie": f"crm_oidc={cookie}"} if cookie else {}
            refused = await http.get(f"/v1/session/oidc/callback?{query}", headers=headers)
            assert refused.status_code == 400, (what, refused.text)
            assert refused.headers["content-type"] == "application/problem+json", what
            assert "crm_session" not in set_cookies(refused), what
        assert cookie_b  # B's sign-in is untouched and could still finish


OPEN_REDIRECTS = ["https://evil.example/console/", "//evil.example/console/", "/\\evil.example",
                  "/console/../v1/session", "/v1/session", "console/", "/console//evil.example",
                  "/console/\r\nSet-Cookie: x=1", ""]


async def test_the_return_path_must_be_a_console_path_on_this_site(oidc_stack):
    async with oidc_stack.client() as http:
        for return_to in OPEN_REDIRECTS:
            response = await http.get("/v1/session/oidc/login", params={"return_to": return_to})
            assert response.status_code == 400, (return_to, response.text)
            assert "location" not in response.headers and "set-cookie" not in response.headers, return_to
        assert (await http.get("/v1/session/oidc/login", params={"return_to": "/console/?lang=zh-CN"})).status_code \
            == 302
