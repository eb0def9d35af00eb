"""Standard answers with full-text search, attachments, and agents' corrections on the real service."""

from __future__ import annotations

from tests.harness.events import new_customer_id
from tests.service.tickets.conftest import SUPERVISOR, key


async def test_standard_answers_are_found_by_full_text_search_and_linked_from_replies(tickets):
    async with tickets.service.client(SUPERVISOR) as http:
        late = (await http.post("/v1/kb/articles", json={
            "title": "Parcel delayed by the carrier", "category": "delivery",
            "body": "Apologise, share the tracking link and offer 100 points for the wait."})).json()
        await http.post("/v1/kb/articles", json={"title": "Broken item on arrival", "category": "product_quality",
                                                 "body": "Ask for a photo, then send a replacement."})
        changed = await http.put(f"/v1/kb/articles/{late['article_id']}", json={
            "title": "Parcel delayed by the carrier", "category": "delivery",
            "body": "Apologise, share the tracking link and offer 200 points for the wait."})
    async with tickets.service.client() as agent:
        found = (await agent.get("/v1/kb/articles", params={"q": "tracking delayed"})).json()
        by_category = (await agent.get("/v1/kb/articles", params={"category": "product_quality"})).json()
        nothing = (await agent.get("/v1/kb/articles", params={"q": "invoice"})).json()
        refused = await agent.post("/v1/kb/articles", json={"title": "x", "body": "y"})
        ticket = await tickets.open(agent, new_customer_id())
        reply = await agent.post(f"/v1/tickets/{ticket['ticket_id']}/comments",
                                 json={"body": found[0]["body"], "article_id": found[0]["article_id"]}, headers=key())
    assert changed.status_code == 200
    assert [a["article_id"] for a in found] == [late["article_id"]] and "200 points" in found[0]["body"]
    assert [a["title"] for a in by_category] == ["Broken item on arrival"]
    assert nothing == [] and refused.status_code == 403
    assert reply.status_code == 201 and reply.json()["article_id"] == late["article_id"]


async def test_attachments_and_an_agents_priority_override_are_kept_in_the_history(tickets):
    async with tickets.service.client() as agent:
        ticket = await tickets.open(agent, new_customer_id(), category="delivery")
        attached = await agent.post(f"/v1/tickets/{ticket['ticket_id']}/attachments", json={
            "filename": "label.jpg", "content_type": "image/jpeg", "size_bytes": 48213,
            "url": "https://files.example/label.jpg"})
        listed = (await agent.get(f"/v1/tickets/{ticket['ticket_id']}/attachments")).json()
        overridden = (await agent.patch(f"/v1/tickets/{ticket['ticket_id']}", json={"priority": "urgent"})).json()
        history = (await agent.get(f"/v1/tickets/{ticket['ticket_id']}/history")).json()
    assert attached.status_code == 201 and [a["filename"] for a in listed] == ["label.jpg"]
    assert ticket["priority"] == "normal"
    assert overridden["priority"] == "urgent" and overridden["priority_overridden"] is True
    assert [h["action"] for h in history] == ["opened", "attachment", "updated"]
    assert history[2]["changes"]["priority"] == ["normal", "urgent"] and history[2]["actor"] == "agent-test"
