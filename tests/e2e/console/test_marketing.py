"""The marketer's screens in Chromium against the whole stack: a marketer builds a one-shot e-mail
campaign on screen (audience and its estimate, a template in two languages with its preview, a
control share of 0), sends it, the e-mails reach the SMTP server, and the results screen shows the
numbers the API gives (the counts and the chart's data table), and, once a supervisor has refreshed
the segments, the segments screen's RFM grid equals the API's. A supervisor then reads the segments,
the churn risk distribution and the valuable-at-risk list, and approves a campaign that waits for it."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS
from playwright.async_api import expect

from tests.harness.campaigns import AGENT, SUPERVISOR, registration
from tests.harness.console import start_console_stack
from tests.harness.events import order_event
from tests.harness.infra import wait_until

STAGES = ("sent", "delivered", "opened", "clicked", "unsubscribed")
NOW = datetime.now(UTC).replace(microsecond=0)


async def _open(page, console, path: str) -> None:
    # By the page address rather than the side menu: ids only in it, as a bookmark would be.
    await page.goto(f"{console.url}#{path}")


@pytest.fixture
def console(make_database, start_service, mail):
    # Any audience of two or more waits for a supervisor: the approval path in a small test.
    return start_console_stack(make_database, start_service, mail, APPROVAL_AUDIENCE_SIZE="2")


async def _customers(console, broker, count: int, prefix: str) -> list[str]:
    ids = [f"c-{prefix}-{uuid.uuid4().hex[:6]}-{i}" for i in range(count)]
    await broker.publish(TOPIC_CUSTOMERS, [registration(c, email=f"{c}@example.com", locale="en") for c in ids])
    return ids


async def _chart_numbers(page, chart: str) -> list[float]:
    cells = page.locator(f"figure[data-chart={chart}] table tbody td")
    return [float(v) for v in await cells.evaluate_all("cells => cells.map(c => c.dataset.value)")]


async def _build(page, console, *, audience: str, locale: str | None, campaign: str) -> str:
    """Fill the builder's three steps on screen and activate; answers the campaign id."""
    await _open(page, console, "/campaigns/new")
    await page.get_by_label("Audience name").fill(audience)
    if locale:
        await page.get_by_role("group", name="Languages").get_by_label(locale, exact=True).check()
    await page.get_by_role("button", name="Save audience and estimate").click()
    await expect(page.locator("[data-estimate]")).to_be_visible()
    await page.get_by_label("Template name").fill(f"{campaign} template")
    await page.get_by_label("Subject (en)").fill("Hello {{ name }}")
    await page.get_by_label("Text (en)").fill("Dear {{ name }}, you have {{ points_balance }} points.")
    await page.get_by_label("HTML (en)").fill("<p>Dear {{ name }}</p>")
    await page.get_by_label("Subject (zh-CN)").fill("你好，{{ name }}")
    await page.get_by_label("Text (zh-CN)").fill("亲爱的{{ name }}，您有 {{ points_balance }} 积分。")
    await page.get_by_role("button", name="Save template").click()
    await expect(page.locator("[data-saved]")).to_be_visible()
    await page.get_by_label("Campaign name").fill(campaign)
    await page.get_by_label("Control group share (%)").fill("0")
    await page.get_by_role("button", name="Create and activate").click()
    outcome = page.locator("[data-status]")
    await expect(outcome).to_be_visible()
    href = await outcome.get_by_role("link", name="Open its results").get_attribute("href")
    return href.rsplit("/", 1)[1]


async def test_a_marketer_builds_a_one_shot_email_campaign_sends_it_and_reads_its_results(
        console, page, broker, mail, browser_artifacts):
    ids = await _customers(console, broker, 1, "mk")
    await console.members(1)
    await console.profiles(ids)
    await console.sign_in(page, "marketer", "mei.lin")
    await _open(page, console, "/campaigns/new")
    await page.get_by_label("Audience name").fill("English speakers")
    await page.get_by_role("group", name="Languages").get_by_label("en", exact=True).check()
    await page.get_by_role("button", name="Save audience and estimate").click()
    estimate = page.locator("[data-estimate]")
    await expect(estimate).to_have_text("Customers matching now who consent to email: 1")
    audience_id = await estimate.get_attribute("data-audience-id")
    audience = await console.get(f"/v1/audiences/{audience_id}")
    assert audience["definition"] == {"locales": ["en"]}
    assert (await console.get(f"/v1/audiences/{audience_id}/estimate", channel="email"))["size"] == 1

    await page.get_by_label("Template name").fill("Points reminder")
    await page.get_by_label("Subject (en)").fill("Hello {{ name }}")
    await page.get_by_label("Text (en)").fill("Dear {{ name }}, you have {{ points_balance }} points.")
    await page.get_by_label("HTML (en)").fill("<p>Dear {{ name }}</p>")
    await page.get_by_label("Subject (zh-CN)").fill("你好，{{ name }}")
    await page.get_by_label("Text (zh-CN)").fill("亲爱的{{ name }}，您有 {{ points_balance }} 积分。")
    await page.get_by_role("button", name="Save template").click()
    await expect(page.locator("[data-saved]")).to_be_visible()
    await page.get_by_label("Preview language").select_option("zh-CN")
    await page.get_by_role("button", name="Preview", exact=True).click()
    await expect(page.locator("[data-part=subject]")).to_have_text("你好，示例顾客")
    await page.get_by_label("Preview language").select_option("en")
    await page.get_by_role("button", name="Preview", exact=True).click()
    await expect(page.locator("[data-part=subject]")).to_have_text("Hello Alex Sample")
    # The rendered HTML is shown as its source, never parsed into the console's page.
    await expect(page.locator("pre[data-part=html]")).to_have_text("<p>Dear Alex Sample</p>")

    await page.get_by_label("Campaign name").fill("Points reminder, December")
    await page.get_by_label("Control group share (%)").fill("0")
    await page.screenshot(path=str(browser_artifacts / "marketing-builder.png"), full_page=True)
    await page.get_by_role("button", name="Create and activate").click()
    await expect(page.locator("[data-status]")).to_have_attribute("data-status", "active")
    href = await page.get_by_role("link", name="Open its results").get_attribute("href")
    campaign_id = href.rsplit("/", 1)[1]
    campaign = await console.get(f"/v1/campaigns/{campaign_id}")
    assert campaign["rules"]["control_share"] == 0 and campaign["kind"] == "one_shot"
    assert campaign["created_by"] == "mei.lin" and campaign["status"] in ("active", "completed")

    received = await mail.wait_for(1, timeout_s=60)
    assert [m["To"].lower() for m in received] == [f"{ids[0]}@example.com"]
    assert received[0]["Subject"] == "Hello Test Customer"

    async def counted() -> bool:
        return (await console.get(f"/v1/campaigns/{campaign_id}/results"))["messages"]["sent"] == 1
    await wait_until(counted, timeout_s=30, what="the sent message counted")
    await page.get_by_role("link", name="Open its results").click()
    await expect(page.locator("[data-count=sent]")).to_have_text("1")
    results = await console.get(f"/v1/campaigns/{campaign_id}/results")
    for stage in ("sent", "delivered", "opened", "clicked", "unsubscribed", "bounced", "failed"):
        await expect(page.locator(f"[data-count={stage}]")).to_have_text(str(results["messages"][stage]))
    await expect(page.locator("[data-contacts=treatment]")).to_have_text(str(results["contacts"]["treatment"]))
    assert await _chart_numbers(page, "campaign-messages") == [results["messages"][s] for s in STAGES]
    lift = results["lift"]
    rates = [round((r or 0) * 10000) / 100 for r in (lift["treatment_rate"], lift["control_rate"])]
    assert await _chart_numbers(page, "campaign-conversion") == rates
    await expect(page.locator("td", has_text=ids[0])).to_have_count(1)  # the messages list: ids, no address
    await page.screenshot(path=str(browser_artifacts / "marketing-results.png"), full_page=True)

    await _open(page, console, "/campaigns")
    row = page.get_by_role("row").filter(has_text="Points reminder, December")
    await expect(row).to_contain_text(re.compile("Active|Completed"))
    # The marketer sees the reward catalogue and the churn distribution; churn scores and pools are staff's.
    await _open(page, console, "/marketing/rewards")
    await expect(page.get_by_role("note")).to_contain_text("Coupon pools are readable by staff only")
    await _open(page, console, "/marketing/churn")
    await expect(page.get_by_role("note")).to_contain_text("for staff only")
    # The distribution (aggregates) is there, and no customer's score: no at-risk list, no customer id.
    await expect(page.locator("figure[data-chart=churn-levels]")).to_have_count(1)
    await expect(page.get_by_role("region", name="Valuable customers at risk")).to_have_count(0)
    assert "c-" not in await page.locator("main").inner_text()

    # Segment sizes and the RFM grid are aggregates a marketer reads: customers with orders of their
    # own (recent and old, once and often), scored by a supervisor's refresh through the API.
    buyers = {f"c-rfm-{uuid.uuid4().hex[:6]}-{i}": orders
              for i, orders in enumerate([(1, 2, 3), (5,), (40, 60), (200,)])}
    await broker.publish(TOPIC_ORDERS, [
        order_event("paid", c, f"o-{uuid.uuid4().hex[:8]}", amount=f"{30 * (n + 1)}.00", at=NOW - timedelta(days=days))
        for c, orders in buyers.items() for n, days in enumerate(orders)])

    async def ordered() -> bool:
        async with console.client(AGENT) as http:
            for c, orders in buyers.items():
                answer = await http.get(f"/v1/profiles/{c}")
                if answer.status_code != 200 or answer.json()["order_count"] != len(orders):
                    return False
        return True
    await wait_until(ordered, timeout_s=30, what="the buyers' orders in their profiles")
    assert (await console.post("/v1/segments/refresh", {}, headers=SUPERVISOR, expect=200))["scored"] == len(buyers)
    await _open(page, console, "/marketing/segments")
    cells = page.locator("figure[data-chart=rfm-grid] table tbody td")
    await expect(cells).to_have_count(25)
    grid = await console.get("/v1/segments/rfm-grid")  # as the marketer
    assert grid["customers"] == len(buyers)
    shown = await cells.evaluate_all(
        "cells => cells.map(c => [+c.dataset.r, +c.dataset.f, +c.dataset.value, c.dataset.amount])")
    assert shown == [[c["r"], c["f"], c["customers"], c["value"]] for c in grid["cells"]]
    assert [r for r, _, _, _ in shown[::5]] == [5, 4, 3, 2, 1] and [f for _, f, _, _ in shown[:5]] == [1, 2, 3, 4, 5]
    segments = {s["segment_id"]: s["members"] for s in await console.get("/v1/segments")}
    rfm = ["champions", "loyal", "potential", "new", "at_risk", "cannot_lose", "hibernating", "lost"]
    assert await _chart_numbers(page, "rfm-segments") == [segments.get(f"rfm:{n}", 0) for n in rfm]
    assert sum(segments.get(f"rfm:{n}", 0) for n in rfm) == len(buyers)
    await expect(page.get_by_role("note")).to_have_count(0)  # no "staff only" note for segments
    await page.screenshot(path=str(browser_artifacts / "marketing-segments.png"), full_page=True)


async def test_a_campaign_above_the_approval_size_waits_and_a_supervisor_reads_risk_and_approves(
        console, page, broker, mail, browser_artifacts):
    ids = await _customers(console, broker, 3, "sv")
    await console.members(3)
    await console.profiles(ids)
    await broker.publish(TOPIC_ORDERS, [order_event("paid", c, f"o-{uuid.uuid4().hex[:8]}", amount="120.00")
                                        for c in ids])
    await console.sign_in(page, "marketer", "mei.lin")
    campaign_id = await _build(page, console, audience="Everyone", locale=None, campaign="Winter greeting")
    await expect(page.locator("[data-status]")).to_have_attribute("data-status", "awaiting_approval")
    await expect(page.locator("[data-status]")).to_contain_text("waits for a supervisor's approval")
    assert (await console.get(f"/v1/campaigns/{campaign_id}"))["status"] == "awaiting_approval"
    assert mail.messages() == []

    await page.get_by_role("button", name="Sign out").click()
    await console.sign_in(page, "supervisor", "wang.fang")
    await _open(page, console, "/marketing/segments")
    segments = {s["segment_id"]: s["members"] for s in await console.get("/v1/segments", headers=SUPERVISOR)}
    rfm = ["champions", "loyal", "potential", "new", "at_risk", "cannot_lose", "hibernating", "lost"]
    await expect(page.locator("figure[data-chart=rfm-segments] table tbody tr")).to_have_count(8)
    assert await _chart_numbers(page, "rfm-segments") == [segments.get(f"rfm:{n}", 0) for n in rfm]

    async def scored() -> bool:
        return len((await console.get("/v1/churn/customers", headers=SUPERVISOR, limit=25))["items"]) == 3

    async def levels_projected() -> bool:
        return await console.db.fetchval("SELECT count(*) FROM members WHERE churn_level IS NOT NULL") == 3
    await wait_until(scored, timeout_s=30, what="three customers scored by the churn service")
    await wait_until(levels_projected, timeout_s=30, what="their churn levels projected by campaigns")
    await _open(page, console, "/marketing/churn")
    await expect(page.locator("figure[data-chart=churn-levels] table tbody tr")).to_have_count(3)
    spread = await console.get("/v1/churn/distribution")  # as the marketer, like the page
    assert spread["customers"] == 3
    assert await _chart_numbers(page, "churn-levels") == [level["customers"] for level in spread["by_level"]]
    assert await _chart_numbers(page, "churn-scores") == [b["customers"] for b in spread["score_bins"]]

    await page.locator("#churn-level").select_option("")
    at_risk = await console.get("/v1/churn/customers", headers=SUPERVISOR, limit=25)
    table = page.get_by_role("region", name="Valuable customers at risk").locator("tbody tr")
    await expect(table).to_have_count(3)
    for i, item in enumerate(at_risk["items"]):
        await expect(table.nth(i).locator("td").first).to_have_text(item["customer_id"])
    await page.screenshot(path=str(browser_artifacts / "marketing-churn.png"), full_page=True)

    await _open(page, console, f"/campaigns/{campaign_id}")
    await expect(page.get_by_text("waits for a supervisor's approval")).to_be_visible()
    await page.get_by_role("button", name="Approve").click()
    await expect(page.locator(".badge").first).to_have_text(re.compile("Active|Completed"))
    assert (await console.get(f"/v1/campaigns/{campaign_id}"))["approved_by"] == "wang.fang"
    assert len(await mail.wait_for(3, timeout_s=60)) == 3
