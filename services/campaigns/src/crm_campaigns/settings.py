"""Settings of the campaigns service (environment variables, see README and docs/campaigns.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from crm_shared.settings import DEV_SECRET, ServiceSettings
from pydantic import Field, SecretStr


class CampaignsSettings(ServiceSettings):
    service_name: str = "campaigns"
    http_port: int = 8005

    # The gateway, through which the service reads a contact from the profile (audited there) and
    # acts in loyalty and tickets, as a service caller. One of the two credentials: an API key the
    # shop's supervisor created with the scopes profiles:read, pii:read, coupons:issue,
    # loyalty:bonus, tickets:write; or a service bearer token carrying them.
    gateway_url: str = "http://127.0.0.1:8000"
    gateway_api_key: SecretStr | None = None
    gateway_token: SecretStr | None = None
    gateway_timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    # Where the links in messages point (the gateway's public address): unsubscribe links.
    public_base_url: str = "http://127.0.0.1:8000"

    # E-mail over SMTP.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_use_tls: bool = False          # implicit TLS (port 465)
    smtp_start_tls: bool | None = None  # None: STARTTLS when the server offers it
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0
    smtp_connections: Annotated[int, Field(ge=1, le=32)] = 2
    mail_from: str = "CRM <crm@shop.example>"
    mail_domain: str = "shop.example"   # the right-hand side of Message-IDs
    shop_name: str = "Shop"             # the {{ shop_name }} of templates

    # SMS (and any provider) through a signed webhook; unset: the channel is unavailable.
    sms_webhook_url: str | None = None
    # The "webhook" channel: the shop's own endpoint (an app's push service), signed the same way.
    webhook_url: str | None = None
    webhook_secret: SecretStr = SecretStr(DEV_SECRET)
    # The secret providers sign delivery callbacks with (POST /v1/public/delivery-status).
    callback_secret: SecretStr = SecretStr(DEV_SECRET)
    # Keys the unsubscribe tokens and the digests of suppressed addresses.
    link_key: SecretStr = SecretStr(DEV_SECRET)

    # A delivery attempt that fails for a passing reason is retried with backoff up to this many
    # tries, then dead-lettered (status failed, kept with its reason).
    delivery_max_attempts: Annotated[int, Field(ge=1, le=50)] = 6
    delivery_backoff_base_s: Annotated[float, Field(gt=0)] = 2.0
    delivery_backoff_cap_s: Annotated[float, Field(gt=0)] = 600.0
    # Contacts handled at once (each reads a contact from the profile and talks to a channel).
    delivery_concurrency: Annotated[int, Field(ge=1, le=256)] = 16
    # A claimed message whose worker died is taken again after this long.
    delivery_lease_s: Annotated[float, Field(gt=0)] = 60.0
    # At most this many contacts handled per second by this process (a provider's rate limit);
    # unset: as fast as the channels take them.
    delivery_rate_per_s: Annotated[float, Field(gt=0)] | None = None
    worker_interval_s: Annotated[float, Field(gt=0)] = 0.5
    planner_interval_s: Annotated[float, Field(gt=0)] = 5.0
    planner_chunk: Annotated[int, Field(ge=100, le=50_000)] = 5000

    # A campaign whose audience is larger than this needs a supervisor's approval before it sends.
    approval_audience_size: Annotated[int, Field(ge=0)] = 10_000
    # A share of all customers kept out of every campaign, to measure the programme as a whole.
    global_holdout_share: Annotated[float, Field(ge=0, lt=1)] = 0.0
    # The local time of day recurring (care calendar) campaigns send at, in the customer's zone.
    default_time_zone: str = "Asia/Shanghai"
    default_locale: Literal["zh-CN", "en"] = "zh-CN"
    # Customers' value (for audiences) is their spend in this currency.
    value_currency: str = "CNY"

    def _secret_fields(self) -> list[tuple[str, SecretStr]]:
        # Our own keys must be real and long; credentials others issue (the SMTP password, the
        # gateway's API key or token) are what they are.
        return [(n, v) for n, v in super()._secret_fields()
                if n not in {"smtp_password", "gateway_api_key", "gateway_token"}]
