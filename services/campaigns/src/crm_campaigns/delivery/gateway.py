"""The other services, reached through the gateway as a service caller.

The campaigns service keeps no contact data: it reads a customer's address at send time from the
profile (``reveal=true`` with a reason naming the message, so the read lands in the profile's PII
audit log under this service's identity) and forgets it once the message is handed over. Coupons,
bonus points and call-back tasks are asked of loyalty and tickets with an ``Idempotency-Key``
derived from the contact, so a retry after a crash replays the first answer instead of acting twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from crm_campaigns.settings import CampaignsSettings


class GatewayError(Exception):
    """A call that failed for a passing reason (network, 5xx, 429): try again later."""


class GatewayBusy(GatewayError):
    """The gateway's rate limit said 429: wait ``retry_after_s`` (its Retry-After) before the next call.
    Not a failure of the contact: it does not count as one of its attempts."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ActionRefused(Exception):
    """The other service refused for good (4xx other than 429): the action is recorded as failed."""


@dataclass(frozen=True, slots=True)
class Contact:
    """What a message needs of the customer, held in memory for one send only."""

    customer_id: str
    email: str | None
    phone: str | None
    name: str | None
    consent_email: bool
    consent_sms: bool
    locale: str | None = None

    def address(self, channel: str) -> str | None:
        return {"email": self.email, "sms": self.phone}.get(channel)

    def consents_to(self, channel: str) -> bool:
        return {"email": self.consent_email, "sms": self.consent_sms}.get(channel, True)


class GatewayClient:
    def __init__(self, settings: CampaignsSettings) -> None:
        headers = {"user-agent": "crm-campaigns"}
        # An empty value counts as unset (compose passes GATEWAY_API_KEY= until a key is created).
        if settings.gateway_api_key is not None and settings.gateway_api_key.get_secret_value():
            headers["x-api-key"] = settings.gateway_api_key.get_secret_value()
        elif settings.gateway_token is not None and settings.gateway_token.get_secret_value():
            headers["authorization"] = f"Bearer {settings.gateway_token.get_secret_value()}"
        self._http = httpx.AsyncClient(base_url=settings.gateway_url, headers=headers,
                                       timeout=settings.gateway_timeout_s,
                                       limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            answer = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayError(f"{method} {path.split('?')[0]}: {type(exc).__name__}") from None
        if answer.status_code == 429:
            raise GatewayBusy(f"{method} {path.split('?')[0]}: HTTP 429", _retry_after_s(answer))
        if answer.status_code >= 500:
            raise GatewayError(f"{method} {path.split('?')[0]}: HTTP {answer.status_code}")
        return answer

    async def contact(self, customer_id: str, message_id: str) -> Contact | None:
        """The customer's contact in clear, read for this message; ``None``: unknown or erased."""
        answer = await self._call("GET", f"/v1/profiles/{customer_id}", params={"reveal": "true"},
                                  headers={"x-access-reason": f"campaign message {message_id}"})
        if answer.status_code in (404, 409, 410):
            return None
        if answer.status_code != 200:
            raise ActionRefused(f"profile read: HTTP {answer.status_code}")
        body = answer.json()
        # The profile states each consent as {"granted", "changed_at", "source"}.
        consents = body.get("consents") or {}
        return Contact(customer_id, body.get("email"), body.get("phone"), body.get("name"),
                       _granted(consents, "email"), _granted(consents, "sms"), body.get("locale"))

    async def issue_coupon(self, pool_id: str, customer_id: str, key: str) -> tuple[str, str]:
        """(coupon id, code): the code travels only in this answer and the message."""
        answer = await self._call("POST", f"/v1/loyalty/coupon-pools/{pool_id}/coupons",
                                  json={"customer_id": customer_id, "count": 1}, headers={"idempotency-key": key})
        if answer.status_code not in (200, 201):
            raise ActionRefused(f"coupon from pool {pool_id}: HTTP {answer.status_code} {_detail(answer)}")
        coupon = answer.json()["coupons"][0]
        return coupon["coupon_id"], coupon["code"]

    async def grant_bonus(self, customer_id: str, points: int, reason: str, reference: str, key: str) -> str:
        answer = await self._call("POST", f"/v1/loyalty/accounts/{customer_id}/bonuses",
                                  json={"points": points, "reason": reason, "reference": reference},
                                  headers={"idempotency-key": key})
        if answer.status_code not in (200, 201):
            raise ActionRefused(f"bonus points: HTTP {answer.status_code} {_detail(answer)}")
        body = answer.json()
        return str(body.get("entry_id") or body.get("id") or reference)

    async def create_callback_task(self, customer_id: str, subject: str, description: str, key: str) -> str:
        answer = await self._call("POST", "/v1/tickets", headers={"idempotency-key": key}, json={
            "customer_id": customer_id, "kind": "follow_up", "channel": "system", "subject": subject,
            "description": description})
        if answer.status_code not in (200, 201):
            raise ActionRefused(f"call-back task: HTTP {answer.status_code} {_detail(answer)}")
        return answer.json()["ticket_id"]


def _granted(consents: dict, channel: str) -> bool:
    return (consents.get(channel) or {}).get("granted") is True


def _retry_after_s(answer: httpx.Response) -> float:
    """The gateway's Retry-After in seconds (it sends whole seconds); one second when it says none."""
    try:
        return max(1.0, float(answer.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _detail(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("detail", ""))[:200]
    except ValueError:
        return ""
