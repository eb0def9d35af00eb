"""A birthday campaign through the real services: one e-mail per consenting customer on their own
day, in their language; none to the control group or to a customer without consent; none twice
across a kill -9 of the campaigns service in the middle of sending. Then an unsubscribe click
withdraws the consent in the profile, and the next campaign skips that customer."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from crm_shared.events.catalogue import TOPIC_CUSTOMERS
from crm_shared.events.envelope import from_kafka

from tests.harness.campaigns import AGENT, EMAIL_TEMPLATE, registration, start_campaigns_stack
from tests.harness.infra import wait_until
from tests.harness.mail import MailSink, unsubscribe_link

ZONES = ("Asia/Shanghai", "America/New_York", "Europe/London")


def local_today(zone: str) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date()


def birthday_on(day: date) -> str:
    return f"1990-{day.month:02d}-{day.day:02d}" if (day.month, day.day) != (2, 29) else "1992-02-29"


@pytest.fixture
def mail(tmp_path):
    sink = MailSink(tmp_path).start()
    yield sink
    sink.stop()


async def test_a_birthday_campaign_greets_each_consenting_customer_once_in_their_language_across_a_kill(
        make_database, start_service, broker, mail):
    # One message at a time, paced, so that the kill lands in the middle of the sending.
    stack = start_campaigns_stack(make_database, start_service, smtp_port=mail.port, DELIVERY_CONCURRENCY="1",
                                  DELIVERY_RATE_PER_S="20")
    run = uuid.uuid4().hex[:6]
    today = {zone: local_today(zone) for zone in ZONES}
    celebrating = [f"c-bd-{run}-{i:02d}" for i in range(36)]
    events = [registration(c, email=f"{c}@example.com", locale=("zh-CN" if i % 2 else "en"),
                           time_zone=ZONES[i % 3], birthday=birthday_on(today[ZONES[i % 3]]))
              for i, c in enumerate(celebrating)]
    no_consent, tomorrow = f"c-bd-{run}-nc", f"c-bd-{run}-tm"
    events.append(registration(no_consent, email=f"{no_consent}@example.com", consent_email=False,
                               birthday=birthday_on(today["Asia/Shanghai"])))
    events.append(registration(tomorrow, email=f"{tomorrow}@example.com",
                               birthday=birthday_on(today["Asia/Shanghai"] + timedelta(days=1))))
    await broker.publish(TOPIC_CUSTOMERS, events)
    await stack.members(len(events))
    await stack.profiles([e.data["customer_id"] for e in events])

    template = await stack.post("/v1/templates", EMAIL_TEMPLATE)
    audience = await stack.post("/v1/audiences", {"name": "Everyone", "definition": {}})
    campaign = await stack.post("/v1/campaigns", {
        "name": "Birthday greeting", "kind": "recurring", "audience_id": audience["audience_id"],
        "template_id": template["template_id"], "actions": [{"kind": "message"}],
        "schedule": {"occasion": "birthday", "send_local_time": "00:00"}, "rules": {"control_share": 0.25}})
    campaign_id = campaign["campaign_id"]
    await stack.post(f"/v1/campaigns/{campaign_id}/activate", {}, expect=200)

    # Kill the service as soon as the first messages have arrived, then start it again.
    await wait_until(lambda: _at_least(mail, 3), timeout_s=60, what="the first e-mails")
    stack.campaigns.kill()
    received_at_kill = len(mail.messages())
    stack.restart_campaigns()
    await stack.settled(campaign_id, timeout_s=90)

    groups = {r["customer_id"]: r["group_name"] for r in await stack.db.fetch(
        "SELECT customer_id, group_name FROM contacts WHERE campaign_id = $1", campaign_id)}
    assert set(groups) == set(celebrating), "the planner picked exactly the customers whose local day it is"
    treated = {c for c, g in groups.items() if g == "treatment"}
    control = {c for c, g in groups.items() if g == "control"}
    assert control and treated

    messages = mail.messages()
    assert 0 < received_at_kill < len(treated), "the kill happened in the middle of the sending"
    by_recipient: dict[str, list] = {}
    for m in messages:
        by_recipient.setdefault(m["To"].lower(), []).append(m)
    assert set(by_recipient) == {f"{c}@example.com" for c in treated}
    assert all(len(mails) == 1 for mails in by_recipient.values()), "nobody got the greeting twice"
    for i, customer_id in enumerate(celebrating):
        if customer_id in treated:
            subject = str(by_recipient[f"{customer_id}@example.com"][0]["Subject"])
            assert subject.startswith("生日快乐" if i % 2 else "Happy birthday"), subject
    # The message of every treated customer is recorded as sent; the control group's as nothing.
    statuses = {r["customer_id"]: r["status"] for r in await stack.db.fetch(
        "SELECT customer_id, status FROM messages WHERE campaign_id = $1", campaign_id)}
    assert statuses == dict.fromkeys(treated, "sent")

    # An unsubscribe click (the link in the mail; the page's button posts it) withdraws the consent.
    leaver = sorted(treated)[0]
    link = unsubscribe_link(by_recipient[f"{leaver}@example.com"][0])
    async with stack.client() as http:
        page = await http.get(link)
        assert page.status_code == 200 and "<form" in page.text
        done = await http.post(link, data={"confirm": "1"})
        assert done.status_code == 200
    # Withdrawn here at once, announced (crm.campaigns.unsubscribed, in the outbox with the message's
    # status), and withdrawn in the profile on that event, with the unsubscribe as its source.
    assert await stack.db.fetchval("SELECT consent_email FROM members WHERE customer_id = $1", leaver) is False

    async def announced() -> bool:
        events = [from_kafka(r.value, r.headers) for r in await broker.read_to_end(["crm.campaigns"])]
        return any(e.type == "crm.campaigns.unsubscribed" and e.data["customer_id"] == leaver for e in events)
    await wait_until(announced, timeout_s=30, what="the unsubscribe announced")

    async def withdrawn_in_profile() -> bool:
        async with stack.client(AGENT) as http:
            response = await http.get(f"/v1/profiles/{leaver}")
        consent = response.json()["consents"]["email"] if response.status_code == 200 else {}
        return (consent.get("granted"), consent.get("source")) == (False, "unsubscribe")
    await wait_until(withdrawn_in_profile, timeout_s=30, what="the consent withdrawn in the profile")

    # The next campaign to everyone skips the customer who left (and the one who never agreed).
    news = await stack.post("/v1/campaigns", {
        "name": "News", "kind": "one_shot", "audience_id": audience["audience_id"],
        "template_id": template["template_id"], "actions": [{"kind": "message"}], "rules": {"control_share": 0}})
    await stack.post(f"/v1/campaigns/{news['campaign_id']}/activate", {}, expect=200)
    await stack.settled(news["campaign_id"])
    news_to = {r["customer_id"] for r in await stack.db.fetch(
        "SELECT customer_id FROM messages WHERE campaign_id = $1 AND status = 'sent'", news["campaign_id"])}
    assert leaver not in news_to and no_consent not in news_to
    assert len(news_to) == len(events) - 2


def _at_least(mail: MailSink, count: int):
    async def probe() -> bool:
        return len(mail.messages()) >= count
    return probe()
