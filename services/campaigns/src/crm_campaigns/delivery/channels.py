"""The channels a message can leave by, opened once per process: the gateway (contacts and
actions), SMTP, the SMS provider's webhook, and the bus (``crm.notifications``, for shops that
deliver themselves; it needs nothing opened)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from crm_campaigns.delivery.gateway import GatewayClient
from crm_campaigns.settings import CampaignsSettings


@dataclass(frozen=True)
class Channels:
    gateway: GatewayClient


@asynccontextmanager
async def open_channels(settings: CampaignsSettings) -> AsyncIterator[Channels]:
    gateway = GatewayClient(settings)
    try:
        yield Channels(gateway=gateway)
    finally:
        await gateway.aclose()
