"""The campaigns service's client of the gateway, against a real gateway and profile: the contact it
reads at send time carries the profile's consents as they are (a consent withdrawn by an agent is
seen withdrawn), an unknown customer is no contact, and the gateway's 429 is a wait of its
Retry-After (GatewayBusy), not a failure."""

from __future__ import annotations

import pytest
from crm_campaigns.delivery.gateway import GatewayBusy, GatewayClient
from crm_campaigns.settings import CampaignsSettings
from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CUSTOMERS

from tests.harness.campaigns import CAMPAIGNS_SCOPES
from tests.harness.events import customer_registered, new_customer_id
from tests.harness.infra import wait_until
from tests.service.gateway.conftest import token

AGENT = Identity(subject="agent-1", role=Role.AGENT)


async def test_the_contact_carries_the_profiles_consents_and_a_429_is_a_wait(gateway_stack, broker):
    stack = gateway_stack(upstreams=("profile",), RATE_LIMIT_CLIENT="4/minute")
    keeps, leaves = new_customer_id(), new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(keeps), customer_registered(leaves)])

    # Straight to the profile, so that only the campaigns client spends its gateway budget.
    profile = stack.upstreams["profile"]

    async def both_known() -> bool:
        async with profile.client(AGENT) as http:
            return all([(await http.get(f"/v1/profiles/{c}")).status_code == 200 for c in (keeps, leaves)])
    await wait_until(both_known, what="both profiles")
    async with profile.client(AGENT) as http:
        response = await http.patch(f"/v1/profiles/{leaves}", json={"consents": {"email": False}},
                                    headers={"Idempotency-Key": "withdraw-1"})
        assert response.status_code == 200, response.text

    client = GatewayClient(CampaignsSettings(
        gateway_url=stack.gateway.url, gateway_token=token("service", "campaigns", scopes=CAMPAIGNS_SCOPES)))
    try:
        kept = await client.contact(keeps, "m-1")
        left = await client.contact(leaves, "m-2")
        assert kept is not None and kept.email == f"{keeps}@example.com" and kept.consents_to("email")
        assert not kept.consents_to("sms")  # registered without SMS consent
        assert left is not None and not left.consents_to("email")
        assert await client.contact(new_customer_id(), "m-3") is None
        # The client's budget is 4 a minute (three spent): the fifth read is refused with the time to wait.
        await client.contact(keeps, "m-4")
        with pytest.raises(GatewayBusy) as refused:
            await client.contact(keeps, "m-5")
        assert 1 <= refused.value.retry_after_s <= 60
    finally:
        await client.aclose()
