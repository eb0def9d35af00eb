"""The console's sign-in with OpenID Connect: authorization code flow with PKCE (S256).

``/login`` remembers a fresh state, nonce and code verifier (and where to return) in a signed,
HttpOnly cookie scoped to these two paths, then sends the browser to the provider. ``/callback``
checks the state against that cookie, exchanges the code (with the verifier, so a code stolen
from the redirect is useless to anyone else), checks the id_token's signature, issuer, audience
and nonce, and verifies the access token exactly as the front door will (TokenVerifier). That
access token becomes the session cookie; the browser goes back to a console path, never elsewhere.
"""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING

from crm_shared.problems import PROBLEM_JSON, Problem
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

from crm_gateway.oidc import STATE_TTL_S, SignInRefused, new_sign_in, safe_return_to
from crm_gateway.session import set_session_cookies

if TYPE_CHECKING:
    from crm_gateway.app import GatewayResources

router = APIRouter(tags=["session"])

STATE_COOKIE = "crm_oidc"
STATE_COOKIE_PATH = "/v1/session/oidc/"

_PROBLEMS = {code: {"content": {PROBLEM_JSON: {}}, "description": text} for code, text in {
    400: "The sign-in cannot go on (a bad return path or state, a refused code or id token)",
    401: "The access token is not accepted", 404: "OIDC is not configured here", 429: "Rate limit used up",
    502: "The identity provider did not answer", 503: "The identity provider cannot be reached"}.items()}


@router.get("/v1/session/oidc/login", status_code=302, response_class=RedirectResponse, responses=_PROBLEMS)
async def oidc_login(request: Request, return_to: str = Query("/console/", max_length=512)) -> RedirectResponse:
    """Start signing in: a 302 to the identity provider (code flow, PKCE S256). ``return_to`` is a
    path of the console (``/console/…``) to come back to; anything else is refused."""
    resources = _resources(request)
    if resources.oidc is None or resources.oidc_state is None:
        raise Problem(404, "Not Found", "OIDC sign-in is not configured here")
    target = safe_return_to(return_to)
    if target is None:
        raise SignInRefused("return_to must be a path under /console/ on this site")
    sign_in = new_sign_in(target)
    response = RedirectResponse(await resources.oidc.authorization_url(sign_in), status_code=302)
    # SameSite=Lax, not Strict: the provider sends the browser back with a top-level GET from its
    # own site, and a Strict cookie would not come along. The state in it is single-use anyway.
    response.set_cookie(STATE_COOKIE, resources.oidc_state.seal(sign_in), max_age=STATE_TTL_S,
                        path=STATE_COOKIE_PATH, secure=resources.settings.secure_cookies, httponly=True,
                        samesite="lax")
    return response


@router.get("/v1/session/oidc/callback", status_code=302, response_class=RedirectResponse, responses=_PROBLEMS)
async def oidc_callback(request: Request, code: str | None = Query(None, max_length=4096),
                        state: str | None = Query(None, max_length=512),
                        error: str | None = Query(None, max_length=200)) -> RedirectResponse:
    """Where the identity provider sends the browser back: sets the session cookies and sends the
    browser to the console path the sign-in started from."""
    resources = _resources(request)
    if resources.oidc is None or resources.oidc_state is None:
        raise Problem(404, "Not Found", "OIDC sign-in is not configured here")
    sign_in = resources.oidc_state.open(request.cookies.get(STATE_COOKIE))
    if sign_in is None:
        raise SignInRefused("no sign-in was started from this browser in the last 10 minutes")
    if state is None or not hmac.compare_digest(state, str(sign_in.get("state", ""))):
        raise SignInRefused("the state does not match the sign-in this browser started")
    if error is not None or not code:
        raise SignInRefused("the identity provider did not sign you in")
    tokens = await resources.oidc.exchange(code, str(sign_in["verifier"]))
    await resources.oidc.verify_id_token(tokens["id_token"], str(sign_in["nonce"]))
    access_token = tokens["access_token"]
    # Exactly the check every later request gets: a token the front door would refuse is no session.
    _, expires = await resources.authenticator.tokens.verify_with_expiry(access_token)
    # The path was checked at /login and sealed in the cookie; checked again, as the cheapest guarantee.
    target = safe_return_to(str(sign_in.get("return_to", ""))) or "/console/"
    response = RedirectResponse(target, status_code=302)
    set_session_cookies(response, resources.settings, access_token,
                        resources.authenticator.csrf.token_for(access_token), max_age=int(expires - time.time()))
    response.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH, secure=resources.settings.secure_cookies,
                           httponly=True, samesite="lax")
    return response


def _resources(request: Request) -> GatewayResources:
    return request.app.state.resources
