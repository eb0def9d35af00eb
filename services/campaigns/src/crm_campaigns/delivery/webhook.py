"""Signed webhooks: one attempt per call, classified so the worker knows whether to try again.

Delivery is at least once: the worker retries on its schedule (kept in the database, so it survives
restarts) and the receiver dedupes on the stable ``X-CRM-Message-Id``. The body is signed with
HMAC-SHA256 over ``f"{t}." + body`` (the scheme Stripe and others use), the timestamp inside the
signature so a captured request cannot be replayed later than the receiver's tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import orjson
from pydantic import SecretStr

WebhookStatus = Literal["sent", "retry", "failed"]
MESSAGE_ID_HEADER = "X-CRM-Message-Id"
TIMESTAMP_HEADER = "X-CRM-Timestamp"
SIGNATURE_HEADER = "X-CRM-Signature"
# Worth another attempt: the receiver is overloaded, restarting or timed out; its fault may pass.
_RETRYABLE = {408, 425, 429}


@dataclass(frozen=True)
class WebhookOutcome:
    status: WebhookStatus
    http_status: int | None = None
    reason: str = ""


def _sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``X-CRM-Signature`` value: ``t=<unix>,v1=<hex HMAC-SHA256(secret, f"{t}." + body)>``.

    Same signature as ``crm_campaigns.domain.signing.sign``, which replaces it when merged.
    """
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def classify(http_status: int) -> WebhookStatus:
    if 200 <= http_status < 300:
        return "sent"
    if http_status in _RETRYABLE or http_status >= 500:
        return "retry"
    # Other 4xx (and a 3xx: redirects are not followed, the URL is wrong): sending it again will not help.
    return "failed"


class WebhookSender:
    """POSTs signed JSON to ``url``. Pass ``client`` to share one connection pool between senders."""

    def __init__(self, url: str, secret: str | bytes | SecretStr, *, client: httpx.AsyncClient | None = None,
                 timeout_s: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        if isinstance(secret, SecretStr):
            secret = secret.get_secret_value()
        self._secret = secret.encode() if isinstance(secret, str) else secret
        if not self._secret:
            raise ValueError("a webhook secret is required")
        self.url = url
        self._owns_client = client is None
        # Connect and read bounded separately: a receiver that accepts but never answers is a retry.
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)), follow_redirects=False,
            headers={"user-agent": "crm-campaigns-webhook/1"})
        self._clock = clock

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def send(self, message_id: str, payload: dict[str, Any]) -> WebhookOutcome:
        body = orjson.dumps(payload)
        timestamp = int(self._clock())
        headers = {
            "content-type": "application/json",
            MESSAGE_ID_HEADER: message_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: _sign(self._secret, body, timestamp),
        }
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return WebhookOutcome("retry", None, f"timed out: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return WebhookOutcome("retry", None, f"connection failed: {type(exc).__name__}")
        # The reason phrase only: a receiver's body may echo anything, and the reason is stored.
        return WebhookOutcome(classify(response.status_code), response.status_code,
                              f"HTTP {response.status_code} {response.reason_phrase}".strip())
