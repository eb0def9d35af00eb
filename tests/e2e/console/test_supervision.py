"""The supervisor's screens in Chromium against the whole stack: the reports' charts show the numbers
of the tickets report (read from the API in the same test), the SLA policy is edited and saved (and
read back), an invalid edit shows the API's problem; a campaign over the approval size waits on the
approvals screen and is approved there (its state read back from the API), and so is an agent's point
adjustment above their limit (the points land on the account); the programme's adjustment
limit is raised on its settings screen (read back)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_ORDERS
from playwright.async_api import Page, expect

from tests.harness.campaigns import AGENT, EMAIL_TEMPLATE, SUPERVISOR, registration
from tests.harness.console import start_console_stack
from tests.harness.events import customer_registered, new_customer_id, order_event
from tests.harness.infra import wait_until
from tests.harness.shop import copy_into_churn_database, synthetic_shop


@pytest.fixture
def console(make_database, start_service, mail):
    """The stack with an approval size of 1: a campaign to two customers waits for a supervisor."""
    return start_console_stack(make_database, start_service, mail, APPROVAL_AUDIENCE_SIZE="1")


async def _request(console, method: str, path: str, headers: dict[str, str], expect_status: int,
                   **kwargs: Any) -> dict[str, Any]:
    async with console.client({**headers, "Idempotency-Key": str(uuid.uuid4())}) as http:
        answer = await http.request(method, path, **kwargs)
    assert answer.status_code == expect_status, answer.text
    return answer.json()


async def _seed_tickets(console) -> None:
    """Four complaints: three resolved with a root cause and rated, one still open (the backlog)."""
    seeds = [("delivery", "courier_delay", "agent-7", 4), ("delivery", "courier_delay", "agent-8", 2),
             ("product_quality", "defect", "agent-7", 5), ("price", None, "agent-8", None)]
    for agent in ("agent-7", "agent-8"):
        await _request(console, "PUT", f"/v1/ticketing/agents/{agent}", SUPERVISOR, 200,
                       json={"name": agent, "groups": [], "available": True})
    for category, root_cause, agent, score in seeds:
        ticket = await _request(console, "POST", "/v1/tickets", AGENT, 201, json={
            "customer_id": f"c-sup-{uuid.uuid4().hex[:8]}", "kind": "complaint", "channel": "phone",
            "subject": f"About {category}", "category": category})
        path = f"/v1/tickets/{ticket['ticket_id']}"
        await _request(console, "POST", f"{path}/assignment", AGENT, 200, json={"agent_id": agent})
        if root_cause:
            await _request(console, "POST", f"{path}/transitions", AGENT, 200,
                           json={"status": "resolved", "root_cause": root_cause})
            await _request(console, "POST", f"{path}/csat", AGENT, 201, json={"score": score})


async def _seed_points(console, broker) -> dict[str, Any]:
    """A member with a paid order: its points pending (the return window is open). The liability then."""
    member = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(member)])
    await broker.publish(TOPIC_ORDERS, [order_event("paid", member, f"o-{uuid.uuid4().hex[:8]}", amount="250.00",
                                                    at=datetime.now(UTC))])

    async def owed() -> dict[str, Any] | None:
        liability = await console.get("/v1/loyalty/reports/liability", headers=SUPERVISOR)
        return liability if liability["points"]["pending"] or liability["points"]["available"] else None
    return await wait_until(owed, timeout_s=30, interval_s=0.3, what="points pending in the liability")


async def _trained_churn_model(console) -> dict[str, Any]:
    """A shop's history in the churn database and a refit: a model with a backtest to report on."""
    conn = await asyncpg.connect(console.databases["churn"].dsn)
    try:
        await copy_into_churn_database(conn, synthetic_shop(300, now=datetime.now(UTC), seed=11, prefix="sv"))
    finally:
        await conn.close()
    return await _request(console, "POST", "/v1/churn/model/refit", SUPERVISOR, 200, timeout=120)


async def _known_member(console, customer_id: str) -> bool:
    async with console.client(AGENT) as http:
        return (await http.get(f"/v1/loyalty/accounts/{customer_id}")).status_code == 200


async def _chart_numbers(page: Page, chart: str) -> dict[str, dict[str, float]]:
    """A chart's data table as {row label: {column label: number}}."""
    return await page.evaluate("""(chart) => {
      const table = document.querySelector(`figure[data-chart="${chart}"] table`);
      const columns = [...table.querySelectorAll("thead th")].slice(1).map((th) => th.textContent);
      return Object.fromEntries([...table.querySelectorAll("tbody tr")].map((tr) => [tr.querySelector("th").textContent,
        Object.fromEntries([...tr.querySelectorAll("td")].map((td, i) => [columns[i], Number(td.dataset.value)]))]));
    }""", chart)


async def test_reports_show_the_apis_numbers_and_the_sla_policy_is_edited(console, page, broker, browser_artifacts):
    await _seed_tickets(console)
    liability = await _seed_points(console, broker)
    model = await _trained_churn_model(console)
    await console.sign_in(page, "supervisor", "chen.jing")
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports", exact=True).click()
    await expect(page.locator('figure[data-chart="complaints-by-category"] table')).to_have_count(1)
    await expect(page.locator('figure[data-chart="complaints-over-time"]')).to_have_count(1)
    await expect(page.locator('figure[data-chart="points-liability"]')).to_have_count(1)
    await expect(page.get_by_role("heading", name="Churn model quality")).to_be_visible()

    # The same period the page asked for, from the API: every cell of two charts matches.
    section = page.locator("section.supervision-report")
    since, until = await section.get_attribute("data-since"), await section.get_attribute("data-until")
    report = await console.get("/v1/ticketing/reports", headers=SUPERVISOR, since=since, until=until)
    expected: dict[str, dict[str, float]] = {}
    causes = {r["root_cause"] or "not given" for r in report["complaints_by_category"]}
    for row in report["complaints_by_category"]:
        cells = expected.setdefault(row["category"], dict.fromkeys(causes, 0))
        cells[row["root_cause"] or "not given"] += row["tickets"]
    assert expected == {"delivery": {"courier_delay": 2, "defect": 0, "not given": 0},
                        "product_quality": {"courier_delay": 0, "defect": 1, "not given": 0},
                        "price": {"courier_delay": 0, "defect": 0, "not given": 1}}, "the seeded tickets, per the API"
    assert await _chart_numbers(page, "complaints-by-category") == expected
    csat = await _chart_numbers(page, "csat-by-agent")
    assert csat == {r["agent"]: {"Average (1–5)": r["average"]} for r in report["csat_by_agent"]}
    assert csat == {"agent-7": {"Average (1–5)": 4.5}, "agent-8": {"Average (1–5)": 2.0}}
    sla = await _chart_numbers(page, "sla-met")
    assert sla["Resolution"]["Met %"] == report["sla"]["resolution_met_pct"]
    by_agent = await _chart_numbers(page, "sla-by-agent")
    assert by_agent == {r["agent"] or "unassigned": {"First response": r["first_response_met_pct"],
                                                     "Resolution": r["resolution_met_pct"]}
                        for r in report["sla_by_agent"]}
    assert {"agent-7", "agent-8"} <= set(by_agent)
    backlog = page.locator("[data-backlog]")
    await expect(backlog).to_have_attribute("data-backlog", str(report["backlog"]["open"]))
    assert report["backlog"]["open"] >= 1  # the open complaint about the price
    points = await _chart_numbers(page, "points-liability")
    assert points == {label: {"Points": liability["points"][key]} for label, key in [
        ("Available", "available"), ("Pending", "pending"), ("Debt owed back", "debt"),
        ("Expiring within 30 days", "expiring_30d"), ("Expiring within 90 days", "expiring_90d")]}
    assert points["Pending"] == {"Points": 250}
    # The backtest's calibration plot: each score bin's mean prediction and real churn rate.
    bins = model["report"]["holdout"]["calibration"]
    assert bins, model["report"]
    calibration = await _chart_numbers(page, "churn-calibration")
    assert calibration == {f"{b['from']:.1f}–{b['to']:.1f} ({b['customers']})": {
        "Mean predicted risk": pytest.approx(b["mean_score"], abs=6e-4),
        "Real churn rate": pytest.approx(b["churn_rate"], abs=6e-4)} for b in bins}
    await expect(page.get_by_role("region", name="Backlog: open tickets").get_by_text("About price")).to_be_visible()
    await page.screenshot(path=str(browser_artifacts / "supervision-reports.png"), full_page=True)

    # The SLA policy: change two figures, save, and the API has the new version.
    await page.get_by_role("link", name="SLA policy").click()
    await expect(page.get_by_text(re.compile(r"^Version 1, saved by"))).to_be_visible()
    await page.get_by_label("Reopen within (days)").fill("21")
    await page.get_by_label("First response for urgent / any").fill("45")
    main_form = page.locator("section", has=page.get_by_role("heading", name="Main settings"))
    await main_form.get_by_role("button", name="Save").click()
    await expect(page.get_by_text(re.compile(r"^Version 2, saved by chen\.jing"))).to_be_visible()
    await page.screenshot(path=str(browser_artifacts / "supervision-sla.png"), full_page=True)
    policy = await console.get("/v1/ticketing/policy", headers=SUPERVISOR)
    urgent = next(s for s in policy["config"]["sla"] if s["priority"] == "urgent" and s["tier"] is None)
    assert (policy["version"], policy["config"]["reopen_days"], urgent["first_response_minutes"]) == (2, 21, 45)

    # An unknown time zone: the API refuses it and the page shows its problem; nothing is saved.
    await page.get_by_label("Time zone").fill("Mars/Olympus")
    await main_form.get_by_role("button", name="Save").click()
    problem = main_form.get_by_role("alert")
    await expect(problem).to_contain_text("Invalid request")
    await expect(problem).to_contain_text("unknown time zone 'Mars/Olympus'")
    assert (await console.get("/v1/ticketing/policy", headers=SUPERVISOR))["version"] == 2


async def test_a_campaign_over_the_approval_size_is_approved_and_the_programme_is_edited(
        console, page, broker, browser_artifacts):
    run = uuid.uuid4().hex[:6]
    customers = [f"c-ap-{run}-{i}" for i in range(2)]
    await broker.publish(TOPIC_CUSTOMERS, [registration(c, email=f"{c}@example.com") for c in customers])
    await console.members(2)
    template = await console.post("/v1/templates", EMAIL_TEMPLATE)
    audience = await console.post("/v1/audiences", {"name": "Everyone", "definition": {}})
    campaign = await console.post("/v1/campaigns", {
        "name": f"Spring sale {run}", "kind": "one_shot", "audience_id": audience["audience_id"],
        "template_id": template["template_id"], "actions": [{"kind": "message"}], "schedule": {}})
    activated = await console.post(f"/v1/campaigns/{campaign['campaign_id']}/activate", {}, expect=200)
    assert activated["status"] == "awaiting_approval", activated
    # An agent asks for an adjustment above their limit (500): it waits for a supervisor.
    await wait_until(lambda: _known_member(console, customers[0]), timeout_s=30, what="the member in loyalty")
    asked = await _request(console, "POST", f"/v1/loyalty/accounts/{customers[0]}/adjustment-requests", AGENT, 201,
                           json={"points": 2000, "reason": "goodwill for a lost parcel"})
    assert asked["status"] == "pending", asked

    await console.sign_in(page, "supervisor", "wang.wei")
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Approvals", exact=True).click()
    row = page.get_by_role("row", name=re.compile(f"Spring sale {run}"))
    await expect(row.get_by_role("cell", name="2", exact=True)).to_be_visible()  # the estimated audience
    await page.screenshot(path=str(browser_artifacts / "supervision-approvals.png"), full_page=True)
    await row.get_by_role("button", name=f"Approve Spring sale {run}").click()
    await page.get_by_role("dialog").get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("status")).to_contain_text("is now active")
    await expect(page.get_by_text("No campaign is waiting for approval.")).to_be_visible()
    approved = await console.get(f"/v1/campaigns/{campaign['campaign_id']}")
    assert approved["status"] == "active" and approved["approved_by"] == "wang.wei", approved

    # The adjustment request: approved with a note, the points are on the account, the queue is empty.
    request_row = page.get_by_role("row", name=re.compile("goodwill for a lost parcel"))
    await expect(request_row).to_contain_text("+2,000")
    await request_row.get_by_label(f"Note on the request {asked['request_id']}").fill("parcel confirmed lost")
    await request_row.get_by_role("button", name=f"Approve the request {asked['request_id']}").click()
    await expect(page.get_by_text("No adjustment is waiting for a decision.")).to_be_visible()
    decided = await console.get(f"/v1/loyalty/adjustment-requests/{asked['request_id']}", headers=AGENT)
    assert (decided["status"], decided["decided_by"], decided["note"]) == ("approved", "wang.wei",
                                                                          "parcel confirmed lost"), decided
    assert decided["entry_id"] is not None
    account = await console.get(f"/v1/loyalty/accounts/{customers[0]}", headers=AGENT)
    assert account["available"] == 2000, account

    # The limits agents adjust points within are the programme's: raise one and save it.
    await page.get_by_role("link", name="Programme settings").click()
    await expect(page.get_by_text(re.compile(r"^Version 1, saved by"))).to_be_visible()
    await page.get_by_label("Agent limit per adjustment (points)").fill("800")
    main_form = page.locator("section", has=page.get_by_role("heading", name="Main settings"))
    await main_form.get_by_label("Note for this version").fill("agents may adjust up to 800")
    await main_form.get_by_role("button", name="Save").click()
    await expect(page.get_by_text(re.compile(r"^Version 2, saved by wang\.wei"))).to_be_visible()
    programme = await console.get("/v1/loyalty/programme", headers=SUPERVISOR)
    assert (programme["version"], programme["config"]["adjustments"]["agent_limit"], programme["note"]) \
        == (2, 800, "agents may adjust up to 800")

    # The menu link is "审批" in Chinese.
    await page.get_by_label("Language").select_option("zh-CN")
    await expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="审批")).to_be_visible()
