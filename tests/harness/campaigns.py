"""The campaigns service with what it works with, all real: profile, loyalty and tickets behind the
gateway, a mail sink (an SMTP server in its own process that keeps what it receives) and,
when asked, a webhook receiver that checks signatures (its own process too)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from crm_shared.devstack import free_port
from crm_shared.events.envelope import CloudEvent

from tests.harness.infra import Database, ServiceProcess, wait_until
from tests.service.gateway.conftest import TEST_JWT_SECRET, bearer, token

CAMPAIGNS_SCOPES = ("profiles:read", "pii:read", "coupons:issue", "loyalty:bonus", "tickets:write")
WEBHOOK_SECRET = "test-webhook-secret-of-the-sms-provider-0123456789"
CALLBACK_SECRET = "test-callback-secret-of-the-providers-0123456789"
LINK_KEY = "test-link-key-of-the-unsubscribe-links-0123456789"
MARKETER = bearer("marketer", "marketer-1")
SUPERVISOR = bearer("supervisor", "sup-1")
AGENT = bearer("agent", "agent-1")


@dataclass
class CampaignsStack:
    gateway: ServiceProcess
    services: dict[str, ServiceProcess]
    databases: dict[str, Database]
    campaigns_env: dict[str, str]
    starter: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def campaigns(self) -> ServiceProcess:
        return self.services["campaigns"]

    @property
    def db(self) -> Database:
        return self.databases["campaigns"]

    def client(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.gateway.url, headers=headers or {}, timeout=15)

    def restart_campaigns(self) -> ServiceProcess:
        """A new campaigns process on the same database and port (after a kill -9, say)."""
        process = self.starter("campaigns", self.db, **self.campaigns_env)
        self.services["campaigns"] = process
        return process

    async def post(self, path: str, body: dict[str, Any], headers: dict[str, str] = MARKETER,
                   expect: int = 201) -> dict[str, Any]:
        async with self.client({**headers, "Idempotency-Key": str(uuid.uuid4())}) as http:
            answer = await http.post(path, json=body)
        assert answer.status_code == expect, answer.text
        return answer.json() if answer.content else {}

    async def get(self, path: str, headers: dict[str, str] = MARKETER, **params: Any) -> dict[str, Any]:
        async with self.client(headers) as http:
            answer = await http.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def members(self, count: int) -> None:
        async def projected() -> bool:
            return await self.db.fetchval("SELECT count(*) FROM members") >= count
        await wait_until(projected, timeout_s=30, what=f"{count} members projected")

    async def profiles(self, customer_ids: list[str]) -> None:
        async def known() -> bool:
            async with self.client(AGENT) as http:
                for customer_id in customer_ids:
                    if (await http.get(f"/v1/profiles/{customer_id}")).status_code != 200:
                        return False
            return True
        await wait_until(known, timeout_s=30, what="profiles")

    async def settled(self, campaign_id: str, timeout_s: float = 60) -> None:
        """Every contact of the campaign handled (none pending) and at least one planned."""
        async def done() -> bool:
            rows = await self.db.fetch("SELECT state, count(*) AS n FROM contacts WHERE campaign_id = $1 "
                                       "GROUP BY state", campaign_id)
            states = {r["state"]: r["n"] for r in rows}
            return bool(states) and not states.get("pending")
        await wait_until(done, timeout_s=timeout_s, what=f"campaign {campaign_id} settled")


def start_campaigns_stack(make_database, start_service, *, smtp_port: int, sms_webhook_url: str | None = None,
                          gateway_env: dict[str, str] | None = None, churn: bool = False,
                          **campaigns_env: str) -> CampaignsStack:
    """The campaigns service, profile, loyalty, tickets (and churn when asked) behind a gateway."""
    names = ("profile", "loyalty", "tickets", "campaigns", *(("churn",) if churn else ()))
    databases = {name: make_database(name) for name in (*names, "gateway")}
    ports = {name: free_port() for name in (*names, "gateway")}
    urls = {f"{name.upper()}_URL": f"http://127.0.0.1:{ports[name]}" for name in names}
    urls.setdefault("CHURN_URL", f"http://127.0.0.1:{free_port()}")  # not started: nothing listens there
    gateway_url = f"http://127.0.0.1:{ports['gateway']}"
    env = {"HTTP_PORT": str(ports["campaigns"]), "GATEWAY_URL": gateway_url, "PUBLIC_BASE_URL": gateway_url,
           "GATEWAY_TOKEN": token("service", "campaigns", scopes=CAMPAIGNS_SCOPES),
           "SMTP_PORT": str(smtp_port), "SMTP_START_TLS": "false", "WEBHOOK_SECRET": WEBHOOK_SECRET,
           "CALLBACK_SECRET": CALLBACK_SECRET, "LINK_KEY": LINK_KEY, "PLANNER_INTERVAL_S": "0.5",
           "WORKER_INTERVAL_S": "0.2", "DELIVERY_BACKOFF_BASE_S": "0.2", "DELIVERY_BACKOFF_CAP_S": "1",
           **({"SMS_WEBHOOK_URL": sms_webhook_url} if sms_webhook_url else {}), **campaigns_env}
    specs = [(name, databases[name], env if name == "campaigns" else {"HTTP_PORT": str(ports[name])})
             for name in names]
    specs.append(("gateway", databases["gateway"], {"JWT_SECRET": TEST_JWT_SECRET, "BREAKER_RECOVERY_S": "2",
                                                    "HTTP_PORT": str(ports["gateway"]), **urls,
                                                    **(gateway_env or {})}))
    *services, gateway = start_service.together(specs)
    return CampaignsStack(gateway, dict(zip(names, services, strict=True)), databases, env, start_service)


def registration(customer_id: str, *, email: str, birthday: str = "1990-03-04", locale: str = "en",
                 time_zone: str = "Asia/Shanghai", consent_email: bool = True, consent_sms: bool = False,
                 phone: str = "+86 138 0013 8000", name: str = "Test Customer") -> CloudEvent:
    at = datetime.now(UTC) - timedelta(days=400)
    return CloudEvent(
        id=str(uuid.uuid4()), source="shop/accounts", type="commerce.customer.registered", subject=customer_id,
        time=at, dataschema="https://crm.example/schemas/commerce.customer.registered/v1.json",
        data={"customer_id": customer_id, "email": email, "phone": phone, "name": name, "birthday": birthday,
              "registered_at": at.isoformat(), "locale": locale, "time_zone": time_zone,
              "consents": {"email": consent_email, "sms": consent_sms}})


def churn_turned_high(customer_id: str) -> CloudEvent:
    now = datetime.now(UTC)
    return CloudEvent(
        id=str(uuid.uuid4()), source="crm/churn", type="crm.churn.risk.changed", subject=customer_id, time=now,
        dataschema="https://crm.example/schemas/crm.churn.risk.changed/v1.json",
        data={"customer_id": customer_id, "old_level": "medium", "new_level": "high", "score": 0.82,
              "reasons": [], "model_version": "test", "scored_at": now.isoformat()})


EMAIL_TEMPLATE = {
    "name": "Greeting", "channel": "email",
    "contents": {
        "en": {"subject": "Happy birthday, {{ name }}", "text": "Dear {{ name }}, happy birthday! {{ coupon_code }}\n"
               "Unsubscribe: {{ unsubscribe_url }}", "html": "<p>Dear {{ name }}, happy birthday!</p>"},
        "zh-CN": {"subject": "生日快乐，{{ name }}", "text": "亲爱的{{ name }}，生日快乐！{{ coupon_code }}\n"
                  "退订：{{ unsubscribe_url }}", "html": "<p>亲爱的{{ name }}，生日快乐！</p>"}}}
