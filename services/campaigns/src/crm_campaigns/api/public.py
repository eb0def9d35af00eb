"""The public routes (``/v1/public/…``): reached through the gateway without a login, so each one
proves itself. An unsubscribe link carries an HMAC token naming the message (no PII; a forged or
altered one is a 404); a provider's delivery callback is signed with the callback secret
(``X-CRM-Signature: t=<unix>,v1=<hex>``, five minutes' tolerance).

GET of an unsubscribe link only shows a confirmation page (mail scanners open links); the POST of
its button, or a mail client's RFC 8058 one-click POST, does it."""

from __future__ import annotations

import base64
import hashlib
import html
import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from crm_shared.errors import NotFoundError
from crm_shared.problems import Problem
from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crm_campaigns.api.common import ReadUow, Uow, resources
from crm_campaigns.domain.signing import BadSignature, verify
from crm_campaigns.usecases import public

router = APIRouter(prefix="/v1/public", tags=["public"])
TokenPath = Path(min_length=16, max_length=200, pattern=r"^[A-Za-z0-9_\-.]+$")

# The page's only style, inline and allowed by its hash: the CSP then forbids every script, frame,
# plugin and outside resource, so a page reached from an e-mail can run nothing but this.
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}"
          "button{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}")
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
_CSP = (f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_HEADERS = {"cache-control": "no-store", "referrer-policy": "no-referrer", "x-content-type-options": "nosniff",
            "content-security-policy": _CSP, "x-robots-tag": "noindex"}
_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">
<title>{title}</title><style>{style}</style></head><body><main><h1>{title}</h1><p>{text}</p>{form}</main></body></html>"""
_NOT_VALID = ("链接无效 / Link not valid", "此退订链接无效或已损坏。 / This unsubscribe link is not valid.")
_HTML_404 = {404: {"description": "The link is forged, altered or unknown (an HTML page)",
                   "content": {"text/html": {"schema": {"type": "string"}}}}}


def _page(title: str, text: str, form: str = "", status: int = 200) -> HTMLResponse:
    body = _PAGE.format(title=html.escape(title), style=_STYLE, text=html.escape(text), form=form)
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, responses=_HTML_404)
async def unsubscribe_page(request: Request, uow: ReadUow, token: str = TokenPath) -> HTMLResponse:
    """The confirmation page of an unsubscribe link (nothing changes until its button is pressed)."""
    try:
        message = await public.message_of_token(uow, _link_key(request), token)
    except NotFoundError:
        return _page(*_NOT_VALID, status=404)
    what = "e-mail" if message.channel == "email" else "SMS"
    form = (f'<form method="post"><button type="submit" name="confirm" value="1">'
            f'退订 / Unsubscribe from {what}</button></form>')
    return _page("退订 / Unsubscribe", f"不再接收营销信息？ / Stop receiving our {what} messages?", form)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, responses=_HTML_404)
async def unsubscribe(request: Request, uow: Uow, token: str = TokenPath) -> HTMLResponse:
    """Unsubscribe (the page's button, or a mail client's one-click POST): the consent of that
    channel is withdrawn here and in the profile. Pressing it again changes nothing."""
    try:
        done = await public.unsubscribe(uow, _link_key(request), token, datetime.now(UTC))
    except NotFoundError:
        return _page(*_NOT_VALID, status=404)
    await uow.commit()
    return _page("已退订 / Unsubscribed", "您将不再收到此类信息。 / You will not receive these messages any more."
                 if not done.already else "您已退订。 / You were already unsubscribed.")


def _link_key(request: Request) -> bytes:
    return resources(request).settings.link_key.get_secret_value().encode()


class DeliveryStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: Annotated[str, Field(min_length=1, max_length=100)]
    status: Literal["delivered", "opened", "clicked", "bounced", "failed"]
    at: datetime | None = None


@router.post("/delivery-status", status_code=204, responses={401: {"description": "Bad or missing signature"},
                                                           404: {"description": "Unknown message"}})
async def delivery_status(request: Request, uow: Uow,
                          signature: Annotated[str | None, Header(alias="X-CRM-Signature")] = None) -> Response:
    """A provider's status of a message it was given: delivered, opened, clicked, bounced, failed.
    Signed with the callback secret over the raw body. A bounce suppresses the address."""
    body = await request.body()
    try:
        verify(resources(request).settings.callback_secret.get_secret_value().encode(), body, signature or "",
               int(time.time()))
    except BadSignature as exc:
        raise Problem(401, "Unauthorized", f"the callback's signature is not valid: {exc}") from None
    try:
        news = DeliveryStatus.model_validate_json(body)
    except ValidationError:
        raise Problem(422, "Invalid request", "the body is not a delivery status") from None
    await public.delivery_status(uow, news.message_id, news.status, news.at or datetime.now(UTC))
    await uow.commit()
    return Response(status_code=204)
