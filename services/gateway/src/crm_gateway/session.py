"""The console's sign-in: server-side sessions in a cookie (CONSOLE.md, "Session API").

The session is a bearer JWT the browser keeps in the ``crm_session`` cookie (HttpOnly, so page
scripts cannot read it; SameSite=Strict, so other sites' pages do not make the browser send it).
The front door (authn.py) accepts it like an ``Authorization`` header; writes also need
``X-CSRF-Token`` equal to the ``crm_csrf`` cookie, which only a page of this origin can read.
Nothing is stored on the server: the token carries the identity, the CSRF token is an HMAC of it.

The routes under ``/v1/session`` that hand out or drop a credential are public rows of the route
table (rate-limited per address); ``GET /v1/session`` needs a signed-in caller like any route.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from crm_shared.auth import CurrentIdentity, mint_user_token
from crm_shared.problems import PROBLEM_JSON, Problem
from fastapi import APIRouter, Request, Response

from crm_gateway.authn import CSRF_COOKIE, SESSION_COOKIE, Credentials
from crm_gateway.schemas import DevSignIn, SessionConfig, SessionRead

if TYPE_CHECKING:
    from crm_gateway.app import GatewayResources
    from crm_gateway.settings import GatewaySettings

router = APIRouter(tags=["session"])

DEV_SESSION_TTL_S = 8 * 3600  # a working day

_PROBLEMS = {code: {"content": {PROBLEM_JSON: {}}, "description": text} for code, text in {
    401: "Not signed in", 429: "Rate limit used up"}.items()}


@router.get("/v1/session/config", response_model=SessionConfig, responses={429: _PROBLEMS[429]})
async def session_config(request: Request) -> SessionConfig:
    """How the console may sign in here (no login needed)."""
    settings = _resources(request).settings
    return SessionConfig(environment=str(settings.environment), methods=sign_in_methods(settings))


@router.post("/v1/session/dev", response_model=SessionRead,
             responses={**_PROBLEMS, 404: {"content": {PROBLEM_JSON: {}}, "description": "Not dev or test"},
                        422: {"content": {PROBLEM_JSON: {}}, "description": "Not a staff role, or a bad name"}})
async def dev_sign_in(body: DevSignIn, request: Request, response: Response) -> SessionRead:
    """Sign in as anyone with a staff role, no password: dev and test only (404 elsewhere, and
    wherever tokens come from an identity provider). ``name`` becomes the subject; the session
    lasts 8 hours. Sets the ``crm_session`` and ``crm_csrf`` cookies."""
    resources = _resources(request)
    settings = resources.settings
    if not settings.dev_sign_in_enabled:
        raise Problem(404, "Not Found", "the dev sign-in is off here")
    token = mint_user_token(secret=settings.jwt_secret.get_secret_value(), issuer=settings.jwt_issuer,
                            audience=settings.jwt_audience, role=body.role, subject=body.name,
                            scopes=("pii:read",) if body.pii else (),
                            ttl_s=DEV_SESSION_TTL_S, algorithm=settings.verification_algorithms[0])
    identity, expires = await resources.authenticator.tokens.verify_with_expiry(token)
    csrf = resources.authenticator.csrf.token_for(token)
    set_session_cookies(response, settings, token, csrf, max_age=int(expires - time.time()))
    return SessionRead(subject=identity.subject, role=str(identity.role), scopes=sorted(identity.scopes),
                       expires_at=datetime.fromtimestamp(expires, UTC), csrf_token=csrf)


@router.get("/v1/session", response_model=SessionRead, responses=_PROBLEMS)
async def current_session(request: Request, identity: CurrentIdentity) -> SessionRead:
    """Who is signed in: with the session cookie, also the CSRF token its writes need. Works with
    a bearer token or an API key too (then without a CSRF token)."""
    authenticator = _resources(request).authenticator
    credentials = Credentials.of(request.scope["headers"])
    token = credentials.session_token if credentials.uses_session else None
    if credentials.authorization is not None:
        token = credentials.authorization.partition(" ")[2].strip()
    expires_at = None
    if token is not None:
        _, expires = await authenticator.tokens.verify_with_expiry(token)  # cached: the front door verified it
        expires_at = datetime.fromtimestamp(expires, UTC)
    return SessionRead(subject=identity.subject, role=str(identity.role), scopes=sorted(identity.scopes),
                       expires_at=expires_at,
                       csrf_token=authenticator.csrf.token_for(token) if credentials.uses_session and token else None)


@router.delete("/v1/session", status_code=204, responses={429: _PROBLEMS[429]})
async def sign_out(request: Request) -> Response:
    """Sign out: clears both cookies. Public, so that an expired session can still clear them.

    The token itself stays valid until it expires (nothing is stored server-side to revoke); the
    browser no longer holds it."""
    response = Response(status_code=204)
    clear_session_cookies(response, _resources(request).settings)
    return response


def sign_in_methods(settings: GatewaySettings) -> list[str]:
    if settings.oidc_enabled:
        return ["oidc"]
    return ["dev"] if settings.dev_sign_in_enabled else []


def set_session_cookies(response: Response, settings: GatewaySettings, token: str, csrf: str, *,
                        max_age: int) -> None:
    max_age = max(0, max_age)
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", secure=settings.secure_cookies,
                        httponly=True, samesite="strict")
    # Readable by the page (not HttpOnly): the page proves it is ours by echoing it as X-CSRF-Token.
    response.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, path="/", secure=settings.secure_cookies,
                        httponly=False, samesite="strict")


def clear_session_cookies(response: Response, settings: GatewaySettings) -> None:
    for name, httponly in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=settings.secure_cookies, httponly=httponly,
                               samesite="strict")


def _resources(request: Request) -> GatewayResources:
    return request.app.state.resources
