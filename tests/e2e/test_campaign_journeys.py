"""Triggered journeys through the real services: a churn warning turned high issues one coupon
from a loyalty pool and sends one e-mail that carries its code; a later paid order counts in the
campaign's lift against its control group. An SMS provider's webhook that fails three times and
then succeeds gets the message once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from crm_campaigns.domain.groups import assign_group
from crm_shared.events.catalogue import TOPIC_CHURN, TOPIC_CUSTOMERS, TOPIC_ORDERS

from tests.harness.campaigns import (
    AGENT,
    EMAIL_TEMPLATE,
    SUPERVISOR,
    WEBHOOK_SECRET,
    churn_turned_high,
    registration,
    start_campaigns_stack,
)
from tests.harness.events import order_event
from tests.harness.infra import wait_until
from tests.harness.mail import MailSink
from tests.harness.webhook_receiver import WebhookReceiver


@pytest.fixture
def mail(tmp_path):
    sink = MailSink(tmp_path).start()
    yield sink
    sink.stop()


def ids_in_groups(campaign_id: str, share: float) -> tuple[str, str]:
    """A customer id the campaign treats and one it keeps in its control group."""
    run = uuid.uuid4().hex[:6]
    ids = [f"c-ch-{run}-{i}" for i in range(200)]
    treated = next(c for c in ids if assign_group(campaign_id, c, share) == "treatment")
    control = next(c for c in ids if assign_group(campaign_id, c, share) == "control")
    return treated, control


async def test_a_churn_warning_issues_one_coupon_and_one_email_and_the_lift_counts_a_later_order(
        make_database, start_service, broker, mail):
    stack = start_campaigns_stack(make_database, start_service, smtp_port=mail.port)
    campaign_id = f"win-back-{uuid.uuid4().hex[:6]}"
    treated, control = ids_in_groups(campaign_id, 0.5)
    await broker.publish(TOPIC_CUSTOMERS, [registration(c, email=f"{c}@example.com") for c in (treated, control)])
    await stack.members(2)
    await stack.profiles([treated, control])
    await stack.post("/v1/loyalty/coupon-pools", {
        "pool_id": f"wb-{campaign_id}", "name": "Win-back 15%", "discount_kind": "percent", "percent": "15",
        "validity_days": 30}, headers=SUPERVISOR)
    template = await stack.post("/v1/templates", {**EMAIL_TEMPLATE, "contents": {"en": {
        "subject": "We miss you", "text": "Your code: {{ coupon_code }}", "html": "<p>{{ coupon_code }}</p>"}}})
    await stack.post("/v1/campaigns", {
        "campaign_id": campaign_id, "name": "Win-back", "kind": "triggered", "template_id": template["template_id"],
        "schedule": {"trigger": "churn_high"}, "rules": {"control_share": 0.5, "conversion_days": 7},
        "actions": [{"kind": "coupon", "pool_id": f"wb-{campaign_id}"}, {"kind": "message"}]})
    await stack.post(f"/v1/campaigns/{campaign_id}/activate", {}, expect=200)

    warning = churn_turned_high(treated)
    await broker.publish(TOPIC_CHURN, [warning, warning, churn_turned_high(control)])  # the first one redelivered
    await stack.settled(campaign_id)
    await wait_until(lambda: _count(mail, 1), timeout_s=30, what="the win-back e-mail")

    items = await stack.get(f"/v1/loyalty/accounts/{treated}/coupons", headers=AGENT)
    assert len(items) == 1, "one coupon, not one per delivery of the warning"
    messages = mail.messages()
    assert len(messages) == 1 and messages[0]["To"].lower() == f"{treated}@example.com"
    body = messages[0].get_body(("plain",)).get_content()
    assert items[0]["code"] in body, "the e-mail carries the coupon's code"
    assert await stack.get(f"/v1/loyalty/accounts/{control}/coupons", headers=AGENT) == []

    # The treated customer orders three days later; the control customer does not.
    paid_at = datetime.now(UTC) + timedelta(days=3)
    await broker.publish(TOPIC_ORDERS, [order_event("paid", treated, f"o-{uuid.uuid4().hex[:8]}", amount="80.00",
                                                    at=paid_at)])

    async def converted() -> bool:
        results = await stack.get(f"/v1/campaigns/{campaign_id}/results")
        return results["lift"]["treatment"]["converted"] == 1
    await wait_until(converted, timeout_s=30, what="the order counted")
    results = await stack.get(f"/v1/campaigns/{campaign_id}/results")
    assert results["contacts"]["treatment"] == 1 and results["contacts"]["control"] == 1
    assert results["lift"]["control"]["converted"] == 0
    assert results["coupons"]["issued"] == 1
    assert results["messages"]["sent"] == 1


async def test_an_sms_webhook_that_fails_three_times_then_succeeds_gets_the_message_once(
        make_database, start_service, broker, mail, tmp_path):
    receiver = WebhookReceiver(tmp_path, secret=WEBHOOK_SECRET, fail_first=3).start()
    try:
        stack = start_campaigns_stack(make_database, start_service, smtp_port=mail.port,
                                      sms_webhook_url=receiver.url)
        customer = f"c-sms-{uuid.uuid4().hex[:6]}"
        await broker.publish(TOPIC_CUSTOMERS, [registration(customer, email=f"{customer}@example.com",
                                                            consent_sms=True)])
        await stack.members(1)
        await stack.profiles([customer])
        template = await stack.post("/v1/templates", {"name": "SMS", "channel": "sms", "contents": {
            "en": {"text": "Hi {{ name }}, 20% off today"}, "zh-CN": {"text": "{{ name }}，今天八折"}}})
        audience = await stack.post("/v1/audiences", {"name": "All", "definition": {}})
        campaign = await stack.post("/v1/campaigns", {
            "name": "Flash sale", "kind": "one_shot", "audience_id": audience["audience_id"],
            "template_id": template["template_id"], "actions": [{"kind": "message"}], "rules": {"control_share": 0}})
        await stack.post(f"/v1/campaigns/{campaign['campaign_id']}/activate", {}, expect=200)
        await stack.settled(campaign["campaign_id"], timeout_s=60)

        received = await receiver.received()
        assert len(received) == 1 and received[0]["payload"]["text"] == "Hi Test Customer, 20% off today"
        attempts = await receiver.attempts()
        assert list(attempts.values()) == [4], "three refusals, then the one that was accepted"
        status = await stack.db.fetchval("SELECT status FROM messages WHERE campaign_id = $1",
                                         campaign["campaign_id"])
        assert status == "sent"
    finally:
        receiver.stop()


def _count(mail: MailSink, count: int):
    async def probe() -> bool:
        return len(mail.messages()) >= count
    return probe()
