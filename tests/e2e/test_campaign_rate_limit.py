"""A send bigger than the campaigns client's budget at the gateway is slowed, never dropped: each
429 holds the worker for the gateway's Retry-After and costs the contact none of its attempts, so
with two attempts allowed and a budget of a few reads a second, every customer still gets the
message once and none is given up."""

from __future__ import annotations

import uuid

import httpx
import pytest
from crm_shared.events.catalogue import TOPIC_CUSTOMERS

from tests.harness.campaigns import EMAIL_TEMPLATE, registration, start_campaigns_stack
from tests.harness.infra import wait_until
from tests.harness.mail import MailSink


@pytest.fixture
def mail(tmp_path):
    sink = MailSink(tmp_path).start()
    yield sink
    sink.stop()


async def test_a_send_over_the_gateway_budget_is_slowed_and_nobody_is_dropped(
        make_database, start_service, broker, mail):
    stack = start_campaigns_stack(make_database, start_service, smtp_port=mail.port, DELIVERY_MAX_ATTEMPTS="2",
                                  DELIVERY_CONCURRENCY="8", gateway_env={"RATE_LIMIT_CLIENT": "4/second"})
    run = uuid.uuid4().hex[:6]
    customers = [f"c-rl-{run}-{i:02d}" for i in range(24)]
    await broker.publish(TOPIC_CUSTOMERS, [registration(c, email=f"{c}@example.com") for c in customers])
    await stack.members(len(customers))
    # Read from the profile's own database: through the gateway, the wait would spend its budget.
    async def profiles_known() -> bool:
        return await stack.databases["profile"].fetchval(
            "SELECT count(*) FROM customers WHERE customer_id = ANY($1::text[])", customers) == len(customers)
    await wait_until(profiles_known, timeout_s=30, what="the profiles")

    template = await stack.post("/v1/templates", EMAIL_TEMPLATE)
    audience = await stack.post("/v1/audiences", {"name": "Everyone", "definition": {}})
    campaign = await stack.post("/v1/campaigns", {
        "name": "News", "kind": "one_shot", "audience_id": audience["audience_id"],
        "template_id": template["template_id"], "actions": [{"kind": "message"}], "rules": {"control_share": 0}})
    await stack.post(f"/v1/campaigns/{campaign['campaign_id']}/activate", {}, expect=200)

    async def all_received() -> bool:
        return len(mail.messages()) >= len(customers)
    await wait_until(all_received, timeout_s=90, what="every e-mail")
    await stack.settled(campaign["campaign_id"])

    recipients = [str(m["To"]).lower() for m in mail.messages()]
    assert sorted(recipients) == sorted(f"{c}@example.com" for c in customers), "each customer once"
    contacts = await stack.db.fetch("SELECT state, skip_reason FROM contacts WHERE campaign_id = $1",
                                    campaign["campaign_id"])
    assert [(r["state"], r["skip_reason"]) for r in contacts] == [("done", None)] * len(customers)
    statuses = await stack.db.fetch("SELECT status FROM messages WHERE campaign_id = $1", campaign["campaign_id"])
    assert [r["status"] for r in statuses] == ["sent"] * len(customers)
    # The budget really was exceeded: the gateway refused some of the campaigns service's reads.
    async with httpx.AsyncClient() as http:
        exposed = (await http.get(f"{stack.gateway.url}/metrics")).text
    refused = sum(float(line.rsplit(" ", 1)[1]) for line in exposed.splitlines()
                  if line.startswith('crm_gateway_rate_limited_total{policy="client"}'))
    assert refused > 0, "no 429 was given: the test did not test the budget"
