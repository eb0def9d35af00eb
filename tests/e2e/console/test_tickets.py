"""The tickets screens in Chromium against the whole stack: an agent opens a ticket for a customer
from a call, finds it in the queue with its SLA clock counting down, answers with a standard answer,
adds an internal note, takes the ticket and resolves it through the workflow; each step is read
back through the API. The ticket view also fits a 390-px phone."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from crm_gateway.domain.routes import RouteTable
from crm_shared.events.catalogue import TOPIC_CUSTOMERS
from playwright.async_api import expect

from tests.harness.campaigns import AGENT, SUPERVISOR, registration
from tests.harness.console import ApiCalls, screenshot
from tests.harness.events import new_customer_id

AGENT_NAME = "li.na"
ANSWER = "Refunds reach your card within 3 to 5 working days of the return being received."


async def put(console, path: str, body: dict) -> dict:
    async with console.client(SUPERVISOR) as http:
        answer = await http.put(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def seed(console, broker) -> tuple[str, dict]:
    """A registered customer, a queue the signed-in agent belongs to (away, so a new ticket waits
    unassigned), and a standard answer written by a supervisor."""
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [registration(customer, email=f"{customer}@example.com")])
    await console.profiles([customer])
    await put(console, "/v1/ticketing/groups/general", {"group_id": "general", "name": "General desk"})
    await put(console, f"/v1/ticketing/agents/{AGENT_NAME}", {"name": "Li Na", "groups": ["general"],
                                                              "available": False})
    article = await console.post("/v1/kb/articles", {"title": "Refund timing", "body": ANSWER,
                                                     "category": "payment"}, headers=SUPERVISOR)
    return customer, article


async def ticket_of(console, ticket_id: str) -> dict:
    return await console.get(f"/v1/tickets/{ticket_id}", headers=AGENT)


async def test_an_agent_opens_answers_takes_and_resolves_a_ticket_on_screen(console, broker, page,
                                                                           browser_artifacts):
    customer, article = await seed(console, broker)
    calls = ApiCalls(page, console.gateway.url)
    await console.sign_in(page, "agent", AGENT_NAME)

    # Opened from a call (the 360's link carries the customer id, nothing else).
    await page.goto(f"{console.url}#/tickets/new/{customer}")
    await expect(page.get_by_label("Customer id")).to_have_value(customer)
    subject = f"Parcel never arrived {uuid.uuid4().hex[:6]}"
    await page.get_by_label("Subject").fill(subject)
    await page.get_by_label("Category", exact=True).fill("delivery")
    await page.get_by_label("Description").fill("Ordered two weeks ago; tracking stopped in Hangzhou.")
    await page.get_by_role("button", name="Open the ticket").click()
    await expect(page.get_by_role("heading", name=subject)).to_be_visible()
    ticket_id = await page.locator("[data-ticket-id]").inner_text()
    opened = await ticket_of(console, ticket_id)
    assert (opened["customer_id"], opened["subject"], opened["channel"], opened["category"]) == (
        customer, subject, "phone", "delivery")
    assert (opened["status"], opened["assignee"], opened["group_id"], opened["created_by"]) == (
        "new", None, "general", AGENT_NAME)

    # The queue: not mine yet, but unassigned and in my team's; its clock counts down by the second.
    await page.goto(f"{console.url}#/tickets")
    await expect(page.get_by_role("tab", name="Mine")).to_have_attribute("aria-selected", "true")
    await expect(page.get_by_role("tabpanel")).to_contain_text("Nothing here yet.")
    await page.get_by_role("tab", name="My team's").click()
    await expect(page.get_by_role("row").filter(has_text=ticket_id)).to_be_visible()
    await page.get_by_role("tab", name="Unassigned").click()
    row = page.get_by_role("row").filter(has_text=ticket_id)
    clock = row.locator("[data-clock=first_response]")
    await expect(clock).to_contain_text(re.compile(r"\d+m \d\ds left"))
    first = await clock.inner_text()
    await expect(clock).not_to_have_text(first)  # a second later it reads less
    await page.get_by_role("tab", name="Breaching soon").focus()
    await screenshot(page, browser_artifacts, "tickets-queue")

    # The ticket: a standard answer inserted into the reply and sent.
    await row.get_by_role("link", name=ticket_id).click()
    await expect(page.get_by_role("heading", name=subject)).to_be_visible()
    await page.get_by_text("Standard answers").click()
    await page.get_by_label("Search the knowledge base").fill("refund")
    await page.get_by_role("search").get_by_role("button", name="Search").click()
    await page.get_by_role("button", name="Insert: Refund timing").click()
    message = page.get_by_label("Message")
    await expect(message).to_have_value(ANSWER)
    await message.press("End")
    await message.press_sequentially(" Sorry for the wait.")
    await page.get_by_role("button", name="Send reply").click()
    conversation = page.locator("ol.comments")
    await expect(conversation.locator("li.comment").filter(has_text="Reply to the customer")).to_contain_text(ANSWER)
    await expect(message).to_have_value("")

    # An internal note.
    await message.fill("Customer called twice; carrier claims delivered.")
    await page.get_by_role("button", name="Add internal note").click()
    await expect(conversation.locator("li.internal")).to_contain_text("carrier claims delivered")
    comments = await console.get(f"/v1/tickets/{ticket_id}/comments", headers=AGENT)
    assert [(c["public"], c["author"], c["article_id"]) for c in comments] == [
        (True, AGENT_NAME, article["article_id"]), (False, AGENT_NAME, None)]
    assert comments[0]["body"] == f"{ANSWER} Sorry for the wait."
    answered = await ticket_of(console, ticket_id)
    assert answered["first_response_at"] and answered["sla"]["first_response"]["state"] == "met"
    await expect(page.locator("[data-clock=first_response]")).to_have_text(re.compile("met"))

    # Taken by me.
    await page.get_by_role("button", name="Assign to me").click()
    await expect(page.locator("dd[data-field=assignee]")).to_have_text(AGENT_NAME)
    assert (await ticket_of(console, ticket_id))["assignee"] == AGENT_NAME
    await expect(page.get_by_role("button", name="Assign to me")).to_be_disabled()

    # Through the workflow: only the moves it allows are offered.
    moves = page.get_by_role("button", name=re.compile("^Move to: "))
    await expect(moves).to_have_text(["Move to: Pending customer", "Move to: Resolved"])
    await page.get_by_role("button", name="Move to: Pending customer").click()
    await expect(page.locator("[data-clock=resolution]")).to_contain_text("paused")
    pending = await ticket_of(console, ticket_id)
    assert pending["status"] == "pending_customer" and pending["sla"]["resolution"]["state"] == "paused"
    await expect(moves).to_have_text(["Move to: Open", "Move to: Resolved"])
    await page.get_by_label("Root cause").fill("carrier")
    await page.get_by_role("button", name="Move to: Resolved").click()
    await expect(moves).to_have_text(["Move to: Open", "Move to: Closed"])
    resolved = await ticket_of(console, ticket_id)
    assert (resolved["status"], resolved["root_cause"], resolved["sla"]["resolution"]["state"]) == (
        "resolved", "carrier", "met")
    history = page.locator("ol.history")
    await expect(history).to_contain_text("status: pending_customer → resolved")
    await expect(history).to_contain_text(f"assignee: — → {AGENT_NAME}")
    await screenshot(page, browser_artifacts, "tickets-detail")

    # The same ticket on a phone: one column, nothing wider than the screen.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.reload()
    await expect(page.get_by_role("heading", name=subject)).to_be_visible()
    await expect(page.get_by_role("button", name="Move to: Closed")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await screenshot(page, browser_artifacts, "tickets-detail-phone")

    # Every call the screens made is a public, documented route of the gateway.
    table = RouteTable()
    assert {(m, p) for m, p in calls.calls if not p.startswith("/v1/session")
            and table.match(m, p).route is None} == set()
    assert ("POST", f"/v1/tickets/{ticket_id}/transitions") in calls.calls


async def test_a_supervisor_sees_what_breaches_soon_soonest_first_in_chinese(console, page):
    # Round the clock, so the due times are minutes away whatever the hour of the run.
    async with console.client(SUPERVISOR) as http:
        current = (await http.get("/v1/ticketing/policy")).json()
        week = {str(day): [{"start": "00:00", "end": "23:59:59"}] for day in range(7)}
        sla = [{"priority": p, "first_response_minutes": f, "resolution_minutes": r}
               for p, f, r in (("urgent", 20, 60), ("high", 120, 600), ("normal", 480, 2880), ("low", 1440, 5760))]
        saved = await http.put("/v1/ticketing/policy", headers={"If-Match": str(current["version"])}, json={
            "config": {**current["config"], "calendar": {"timezone": "Asia/Shanghai", "week": week}, "sla": sla}})
        assert saved.status_code == 200, saved.text
    await put(console, "/v1/ticketing/groups/general", {"group_id": "general", "name": "General desk"})
    await put(console, f"/v1/ticketing/agents/{AGENT_NAME}", {"name": "Li Na", "groups": ["general"],
                                                              "available": False})
    ids = {}
    for priority in ("urgent", "normal", "high"):
        ticket = await console.post("/v1/tickets", {
            "customer_id": new_customer_id(), "kind": "enquiry", "channel": "chat", "subject": f"{priority} one",
            "priority": priority}, headers=AGENT)
        ids[priority] = ticket["ticket_id"]

    await console.sign_in(page, "supervisor", "sup.zhou")
    await page.get_by_label("Language").select_option("zh-CN")
    await page.goto(f"{console.url}#/tickets")
    await page.get_by_role("tab", name="即将超时").click()
    rows = page.get_by_role("tabpanel").get_by_role("row").filter(has=page.locator("td"))
    await expect(rows).to_have_count(2)
    # The same tickets the API's due times say: a running clock due within 4 hours, soonest first.
    listed = (await console.get("/v1/tickets", headers=AGENT, status="active"))["items"]
    mine = [t for t in listed if t["ticket_id"] in ids.values()]
    due = {t["ticket_id"]: min(c["due_at"] for c in t["sla"].values() if c["due_at"]) for t in mine}
    soon = sorted((d, i) for i, d in due.items()
                  if datetime.fromisoformat(d) - datetime.now(UTC) < timedelta(hours=4))
    assert [i for _, i in soon] == [ids["urgent"], ids["high"]]
    await expect(rows.locator("td:first-child a")).to_have_text([i for _, i in soon])
    await expect(rows.first.locator("[data-clock=first_response]")).to_contain_text(re.compile(r"剩余 1\dm \d\ds"))

    # A supervisor picks any queue; theirs is not on the agents list, so nothing is assigned to them.
    await page.get_by_role("tab", name="我的团队").click()
    await expect(page.get_by_label("队列")).to_have_value("general")
    await expect(rows).to_have_count(3)
    await page.get_by_role("link", name=ids["urgent"]).click()
    await expect(page.get_by_role("heading", name="urgent one")).to_be_visible()
    await expect(page.get_by_role("button", name="分配给我")).to_be_disabled()
    moves = page.get_by_role("button", name=re.compile("^改为："))
    await expect(moves).to_have_text(["改为：处理中", "改为：等待客户", "改为：已解决"])
    await page.get_by_label("客服").select_option(AGENT_NAME)
    await page.get_by_role("button", name="分配给该客服").click()
    await expect(page.locator("dd[data-field=assignee]")).to_have_text(AGENT_NAME)
    taken = await ticket_of(console, ids["urgent"])
    assert (taken["assignee"], taken["status"]) == (AGENT_NAME, "open")
    await expect(moves).to_have_text(["改为：等待客户", "改为：已解决"])
