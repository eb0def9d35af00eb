"""The console's session through the real gateway: dev sign-in, the cookies, cookie-authenticated
calls to proxied and local routes, the CSRF check on writes, sign-out (CONSOLE.md, "Session API")."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
from crm_shared.events.catalogue import TOPIC_CUSTOMERS

from tests.harness.events import customer_registered, new_customer_id
from tests.harness.infra import wait_until
from tests.service.gateway.conftest import bearer


def set_cookies(response: httpx.Response) -> dict[str, dict[str, str | bool]]:
    """Each Set-Cookie of the response: name → {"value": …, attribute (lower case): value or True}."""
    cookies: dict[str, dict[str, str | bool]] = {}
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        parsed: dict[str, str | bool] = {"value": value.strip('"')}
        for attribute in attributes:
            key, sep, val = attribute.partition("=")
            parsed[key.lower()] = val if sep else True
        cookies[name] = parsed
    return cookies


async def sign_in(http: httpx.AsyncClient, role: str = "agent", name: str = "li.na") -> tuple[str, str, dict]:
    response = await http.post("/v1/session/dev", json={"role": role, "name": name})
    assert response.status_code == 200, response.text
    cookies = set_cookies(response)
    http.cookies.clear()  # each request below says which cookies it sends
    return cookies["crm_session"]["value"], cookies["crm_csrf"]["value"], response.json()


async def test_dev_sign_in_sets_an_httponly_strict_session_and_a_readable_csrf_cookie(gateway_stack):
    stack = gateway_stack(upstreams=())
    async with stack.client() as http:
        config = await http.get("/v1/session/config")
        assert config.json() == {"environment": "test", "methods": ["dev"]}
        response = await http.post("/v1/session/dev", json={"role": "supervisor", "name": "li.na"})
    assert response.status_code == 200, response.text
    body, cookies = response.json(), set_cookies(response)
    assert (body["subject"], body["role"], body["scopes"]) == ("li.na", "supervisor", [])
    expires_in = datetime.fromisoformat(body["expires_at"]).timestamp() - time.time()
    assert 8 * 3600 - 60 < expires_in <= 8 * 3600
    session, csrf = cookies["crm_session"], cookies["crm_csrf"]
    assert session["httponly"] is True and session["samesite"].lower() == "strict" and session["path"] == "/"
    assert "httponly" not in csrf and csrf["samesite"].lower() == "strict" and csrf["path"] == "/"
    assert "secure" not in session and "secure" not in csrf  # plain http in test; Secure in prod (below)
    assert 8 * 3600 - 60 < int(session["max-age"]) <= 8 * 3600
    assert csrf["value"] == body["csrf_token"] and len(csrf["value"]) == 43
    assert session["value"].count(".") == 2  # a JWT, and nothing the page can read


async def test_the_cookie_authenticates_reads_and_writes_need_the_matching_csrf_token(broker, gateway_stack):
    stack = gateway_stack(upstreams=("profile",))
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    async with stack.client(bearer("agent", "agent-1")) as http:
        await wait_until(lambda: _status_is(http, f"/v1/profiles/{customer}", 200), what="customer known")
    async with stack.client() as http:
        session, csrf, _ = await sign_in(http, "agent", "li.na")
        _, other_csrf, _ = await sign_in(http, "agent", "wang.wei")
        cookie = {"Cookie": f"crm_session={session}; crm_csrf={csrf}"}
        me = await http.get("/v1/session", headers=cookie)
        assert me.status_code == 200
        assert me.json()["subject"] == "li.na" and me.json()["csrf_token"] == csrf
        # A proxied read: the profile service gets the identity, never the cookie.
        assert (await http.get(f"/v1/profiles/{customer}", headers=cookie)).status_code == 200
        assert (await http.get("/v1/profiles", params={"name": "x"}, headers=cookie)).status_code == 200
        note = f"/v1/profiles/{customer}/notes"
        for wrong in ({}, {"X-CSRF-Token": other_csrf}, {"X-CSRF-Token": csrf[:-1]}):
            refused = await http.post(note, json={"body": "called"}, headers={**cookie, **wrong,
                                                                               "Idempotency-Key": "k-csrf-1"})
            assert refused.status_code == 403, wrong
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["detail"].startswith("CSRF token missing or wrong")
        written = await http.post(note, json={"body": "called"},
                                  headers={**cookie, "X-CSRF-Token": csrf, "Idempotency-Key": "k-csrf-1"})
        assert written.status_code == 201, written.text
        assert written.json()["author"] == "li.na"
        # Without any credential: 401; with a garbage cookie: 401.
        assert (await http.get("/v1/session")).status_code == 401
        assert (await http.get("/v1/session", headers={"Cookie": "crm_session=garbage"})).status_code == 401
        # A bearer caller needs no CSRF token and its header wins over a cookie.
        as_app = await http.post(note, json={"body": "app"}, headers={**bearer("agent", "agent-2"), **cookie,
                                                                       "Idempotency-Key": "k-csrf-2"})
        assert as_app.status_code == 201 and as_app.json()["author"] == "agent-2"


async def test_sign_out_clears_both_cookies(gateway_stack):
    stack = gateway_stack(upstreams=())
    async with stack.client() as http:
        session, _, _ = await sign_in(http)
        response = await http.delete("/v1/session", headers={"Cookie": f"crm_session={session}"})
        # Public: an expired or broken session can still sign out.
        expired = await http.delete("/v1/session", headers={"Cookie": "crm_session=expired"})
    assert response.status_code == 204 and expired.status_code == 204
    cleared = set_cookies(response)
    assert set(cleared) == {"crm_session", "crm_csrf"}
    for cookie in cleared.values():
        assert cookie["value"] == "" and cookie["max-age"] == "0" and cookie["path"] == "/"


REFUSED_SIGN_INS = [{"role": "customer", "name": "c-1"}, {"role": "service", "name": "erp"},
                    {"role": "admin", "name": "x"}, {"role": "agent", "name": ""}, {"role": "agent", "name": "a" * 61},
                    {"role": "agent", "name": "apikey:x"}, {"role": "agent", "name": "li na"}, {"role": "agent"},
                    {"role": "agent", "name": "li.na", "scope": "pii:read"},
                    {"role": "supervisor", "name": "s", "pii": True}, {"role": "marketer", "name": "m", "pii": True}]


async def test_dev_sign_in_is_for_staff_roles_and_plain_names_only(gateway_stack):
    stack = gateway_stack(upstreams=())
    async with stack.client() as http:
        for body in REFUSED_SIGN_INS:
            response = await http.post("/v1/session/dev", json=body)
            assert response.status_code == 422, (body, response.text)
            assert "set-cookie" not in response.headers, body
        for role in ("agent", "supervisor", "marketer"):
            signed_in = await http.post("/v1/session/dev", json={"role": role, "name": "A.b_c-9"})
            assert signed_in.status_code == 200 and signed_in.json()["scopes"] == []
        # An agent with the PII permission, as an identity provider would grant it by a scope.
        trusted = await http.post("/v1/session/dev", json={"role": "agent", "name": "li.na", "pii": True})
    assert trusted.status_code == 200 and trusted.json()["scopes"] == ["pii:read"]


# The harness lets tests run jobs "as of" another time; production refuses that setting.
PROD = {"ENVIRONMENT": "prod", "JOBS_ACCEPT_AS_OF": "false"}


async def test_dev_sign_in_is_off_in_production(gateway_stack):
    stack = gateway_stack(upstreams=(), **PROD, JWT_SECRET="a-production-jwt-secret-0123456789abcdef")
    async with stack.client() as http:
        config = await http.get("/v1/session/config")
        response = await http.post("/v1/session/dev", json={"role": "supervisor", "name": "li.na"})
    assert config.json() == {"environment": "prod", "methods": []}
    assert response.status_code == 404 and "set-cookie" not in response.headers
    assert response.headers["content-type"] == "application/problem+json"


async def _status_is(http, url: str, status: int) -> bool:
    return (await http.get(url)).status_code == status
