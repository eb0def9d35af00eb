"""The unsubscribe page, as a customer meets it: a link in a real e-mail opened in Chromium with
scripts off (as many mail clients' viewers are), through the gateway. Opening it changes nothing;
its button withdraws the consent, here and in the profile; a second press says so; a forged link
is an HTML page saying the link is not valid, not a JSON error."""

from __future__ import annotations

import re
import uuid

import pytest
from crm_shared.events.catalogue import TOPIC_CUSTOMERS
from crm_shared.events.envelope import from_kafka
from playwright.async_api import expect

from tests.harness.campaigns import EMAIL_TEMPLATE, registration, start_campaigns_stack
from tests.harness.infra import wait_until
from tests.harness.mail import MailSink, unsubscribe_link


@pytest.fixture
def mail(tmp_path):
    sink = MailSink(tmp_path).start()
    yield sink
    sink.stop()


@pytest.fixture
def browser_context_args():
    return {"java_script_enabled": False, "locale": "zh-CN", "viewport": {"width": 390, "height": 844}}


async def test_a_customer_unsubscribes_from_the_link_in_their_e_mail_in_a_real_browser(
        make_database, start_service, broker, mail, page):
    stack = start_campaigns_stack(make_database, start_service, smtp_port=mail.port)
    customer = f"c-unsub-{uuid.uuid4().hex[:6]}"
    await broker.publish(TOPIC_CUSTOMERS, [registration(customer, email=f"{customer}@example.com", locale="zh-CN")])
    await stack.members(1)
    await stack.profiles([customer])
    template = await stack.post("/v1/templates", EMAIL_TEMPLATE)
    audience = await stack.post("/v1/audiences", {"name": "Everyone", "definition": {}})
    campaign = await stack.post("/v1/campaigns", {
        "name": "News", "kind": "one_shot", "audience_id": audience["audience_id"],
        "template_id": template["template_id"], "actions": [{"kind": "message"}], "rules": {"control_share": 0}})
    await stack.post(f"/v1/campaigns/{campaign['campaign_id']}/activate", {}, expect=200)
    link = unsubscribe_link((await mail.wait_for(1, timeout_s=60))[0])
    assert link.startswith(stack.gateway.url), "the link leads through the gateway"

    # Opening the link shows the confirmation and changes nothing (mail scanners open links too).
    response = await page.goto(link)
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    await expect(page).to_have_title("退订 / Unsubscribe")
    assert await page.get_attribute("html", "lang") == "zh-CN"
    # The page's one inline style is allowed by its hash: applied, and no CSP violation reported.
    assert await page.eval_on_selector("main", "m => getComputedStyle(m.parentElement).maxWidth") == "512px"
    button = page.get_by_role("button", name=re.compile("Unsubscribe from e-mail"))
    await expect(button).to_be_visible()
    assert await _consent(stack, customer) is True

    # Pressing the button (a plain form post: scripts are off) unsubscribes.
    await button.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("已退订 / Unsubscribed")
    await expect(page.locator("main p")).to_contain_text("You will not receive these messages any more.")
    assert await _consent(stack, customer) is False

    async def announced() -> bool:
        events = [from_kafka(r.value, r.headers) for r in await broker.read_to_end(["crm.campaigns"])]
        return any(e.type == "crm.campaigns.unsubscribed" and e.data["customer_id"] == customer for e in events)
    await wait_until(announced, timeout_s=30, what="the unsubscribe announced to the profile")

    # The link again: the same page, whose button now says it was done already.
    await page.goto(link)
    await page.get_by_role("button", name=re.compile("Unsubscribe")).click()
    await expect(page.locator("main p")).to_contain_text("You were already unsubscribed.")

    # A forged or altered link: a page a person can read, with the status a machine can.
    forged = link[:-6] + ("AAAAAA" if not link.endswith("AAAAAA") else "BBBBBB")
    response = await page.goto(forged)
    assert response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    await expect(page.get_by_role("heading", level=1)).to_have_text("链接无效 / Link not valid")
    await expect(page.get_by_role("button")).to_have_count(0)


async def _consent(stack, customer_id: str) -> bool:
    return await stack.db.fetchval("SELECT consent_email FROM members WHERE customer_id = $1", customer_id)
