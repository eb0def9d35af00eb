"""The channels a message can leave by, opened once per process: the gateway (contacts and
actions), SMTP, the SMS provider's and the shop's webhooks, and the bus (``crm.notifications``,
for shops that deliver themselves; it needs nothing opened)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import parseaddr

import httpx

from crm_campaigns.delivery.gateway import GatewayClient
from crm_campaigns.delivery.smtp import SmtpSender, SmtpSettings
from crm_campaigns.delivery.webhook import WebhookSender
from crm_campaigns.settings import CampaignsSettings


@dataclass(frozen=True)
class Channels:
    gateway: GatewayClient
    smtp: SmtpSender
    sms: WebhookSender | None
    webhook: WebhookSender | None
    mail_from: str


def smtp_settings(settings: CampaignsSettings) -> SmtpSettings:
    name, address = parseaddr(settings.mail_from)
    return SmtpSettings(host=settings.smtp_host, port=settings.smtp_port, use_tls=settings.smtp_use_tls,
                        start_tls=settings.smtp_start_tls, username=settings.smtp_username,
                        password=settings.smtp_password, timeout_s=settings.smtp_timeout_s,
                        from_address=address or "campaigns@localhost", from_name=name or None,
                        pool_size=settings.smtp_connections)


@asynccontextmanager
async def open_channels(settings: CampaignsSettings) -> AsyncIterator[Channels]:
    gateway = GatewayClient(settings)
    smtp_config = smtp_settings(settings)
    smtp = SmtpSender(smtp_config)
    # One connection pool for both webhooks; redirects are not followed (a signed body goes only
    # where it was configured to go).
    http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
    secret = settings.webhook_secret
    sms = WebhookSender(settings.sms_webhook_url, secret, client=http) if settings.sms_webhook_url else None
    webhook = WebhookSender(settings.webhook_url, secret, client=http) if settings.webhook_url else None
    try:
        yield Channels(gateway=gateway, smtp=smtp, sms=sms, webhook=webhook, mail_from=smtp_config.from_header)
    finally:
        await smtp.close()
        await http.aclose()
        await gateway.aclose()
