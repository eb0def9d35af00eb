"""The console's sign-in with OpenID Connect: authorization code flow with PKCE (S256)."""

from __future__ import annotations

from crm_shared.problems import PROBLEM_JSON, Problem
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

router = APIRouter(tags=["session"])

_PROBLEMS = {code: {"content": {PROBLEM_JSON: {}}, "description": text} for code, text in {
    400: "The sign-in cannot go on (bad state, refused code)", 404: "OIDC is not configured here",
    429: "Rate limit used up"}.items()}


@router.get("/v1/session/oidc/login", status_code=302, response_class=RedirectResponse, responses=_PROBLEMS)
async def oidc_login(request: Request, return_to: str = Query("/console/", max_length=512)) -> RedirectResponse:
    """Start signing in at the identity provider: a 302 there (code flow, PKCE S256)."""
    if not request.app.state.resources.settings.oidc_enabled:
        raise Problem(404, "Not Found", "OIDC sign-in is not configured here")
    raise Problem(404, "Not Found", "OIDC sign-in is not configured here")


@router.get("/v1/session/oidc/callback", status_code=302, response_class=RedirectResponse, responses=_PROBLEMS)
async def oidc_callback(request: Request, code: str | None = Query(None, max_length=4096),
                        state: str | None = Query(None, max_length=512)) -> RedirectResponse:
    """Where the identity provider sends the browser back: sets the session cookies, 302 to the console."""
    if not request.app.state.resources.settings.oidc_enabled:
        raise Problem(404, "Not Found", "OIDC sign-in is not configured here")
    raise Problem(404, "Not Found", "OIDC sign-in is not configured here")
