"""The campaigns management API on a real service and database: audiences, templates and
campaigns round trips, the 422s of bad definitions and unsafe templates, the approval of large
audiences, who may do what, and results with the lift of the treatment over the control."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from crm_campaigns.domain.lift import GroupOutcome, lift
from crm_shared.auth import Identity, Role

from tests.service.campaigns.conftest import AGENT, APPROVAL_AUDIENCE_SIZE, MARKETER, SUPERVISOR

NOW = datetime.now(UTC)
EMAIL = {"name": "Welcome", "channel": "email", "contents": {
    "en": {"subject": "Hello {{ name }}", "html": "<p>{{ name }}, you have {{ points_balance }} points</p>",
           "text": "{{ name }}: {{ points_balance }} points ({{ tier }})"},
    "zh-CN": {"subject": "您好 {{ name }}", "text": "{{ name }}，您有 {{ points_balance }} 积分"}}}


def member(customer_id: str, **values) -> dict:
    return {"customer_id": customer_id, "consent_email": True, "consent_sms": False, "tier": "silver",
            "points_available": 100, "segments": [], "locale": "en", **values}


async def test_audiences_round_trip_estimate_members_and_refuse_unknown_filters(campaigns):
    await campaigns.insert("members", [
        member("c1", segments=["vip", "rfm:champions"], tier="gold", points_available=900),
        member("c2", segments=["vip"], consent_email=False, consent_sms=True),
        member("c3", segments=["rfm:lost"]),
        member("c4", segments=["vip"], tier="gold")])
    body = {"audience_id": "vips", "name": "VIPs", "definition": {"segments_any": ["vip"]}}
    created = await campaigns.created("/v1/audiences", body)
    assert created["version"] == 1 and created["created_by"] == MARKETER.subject
    async with campaigns.client() as http:
        assert (await http.get("/v1/audiences/vips")).json()["definition"] == {"segments_any": ["vip"]}
        assert [a["audience_id"] for a in (await http.get("/v1/audiences")).json()] == ["vips"]
        sizes = {ch: (await http.get("/v1/audiences/vips/estimate", params={"channel": ch})).json()["size"]
                 for ch in ("email", "sms", "webhook")}
        assert sizes == {"email": 2, "sms": 1, "webhook": 3}  # consent counts for email and sms only
        changed = await http.put("/v1/audiences/vips", json={
            "name": "Gold VIPs", "definition": {"segments_any": ["vip"], "tiers": ["gold"]}, "version": 1})
        assert changed.status_code == 200 and changed.json()["version"] == 2, changed.text
        stale = await http.put("/v1/audiences/vips", json={"name": "x", "definition": {}, "version": 1})
        assert stale.status_code == 409 and stale.headers["content-type"] == "application/problem+json"
        assert (await http.get("/v1/audiences/vips/estimate", params={"channel": "email"})).json()["size"] == 2
        assert (await http.get("/v1/audiences/nope")).status_code == 404
    generated = await campaigns.created("/v1/audiences", {"name": "Champions",
                                                          "definition": {"rfm_segments": ["champions"]}})
    assert uuid.UUID(generated["audience_id"])
    assert (await campaigns.post("/v1/audiences", body)).status_code == 409  # the id is taken
    for definition in ({"segment_any": ["vip"]}, {"rfm_segments": ["whales"]}, {"birthday_month": 13},
                       {"orders_min": 5, "orders_max": 2}, {"churn_levels": ["extreme"]}, {"value_min": -1}):
        refused = await campaigns.post("/v1/audiences", {"name": "bad", "definition": definition})
        assert refused.status_code == 422, (definition, refused.text)
    assert (await campaigns.post("/v1/audiences", {"name": "x", "definition": {}}, identity=AGENT)).status_code == 403


async def test_a_post_replayed_with_its_key_answers_the_first_answer(campaigns):
    headers = {"Idempotency-Key": "audience-create-0001"}
    body = {"name": "All", "definition": {}}
    first = await campaigns.post("/v1/audiences", body, **headers)
    again = await campaigns.post("/v1/audiences", body, **headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers.get("idempotent-replayed") == "true"
    async with campaigns.client() as http:
        assert len((await http.get("/v1/audiences")).json()) == 1


async def test_templates_are_checked_for_their_channel_and_the_sandbox_and_preview_without_pii(campaigns):
    await campaigns.insert("members", [member("c9", tier="platinum", points_available=4321, locale="zh-CN")])
    template = await campaigns.created("/v1/templates", {"template_id": "welcome", **EMAIL})
    assert set(template["contents"]) == {"en", "zh-CN"}
    async with campaigns.client() as http:
        sample = (await http.post("/v1/templates/welcome/preview", json={"locale": "en"})).json()
        assert sample["subject"] == "Hello Alex Sample" and "1280 points" in sample["html"]
        # A member's tier and points from the projection, their locale; the name stays the sample's.
        mine = (await http.post("/v1/templates/welcome/preview", json={"customer_id": "c9"})).json()
        assert mine["locale"] == "zh-CN" and "4321" in mine["text"] and "示例顾客" in mine["text"]
        # HTML values are escaped: a variable cannot inject markup.
        hostile = await http.post("/v1/templates/welcome/preview",
                                  json={"locale": "en", "variables": {"name": "<script>x</script>"}})
        assert "<script>" not in hostile.json()["html"] and "&lt;script&gt;" in hostile.json()["html"]
        assert (await http.post("/v1/templates/nope/preview", json={})).status_code == 404
        updated = await http.put("/v1/templates/welcome", json={**EMAIL, "name": "Welcome 2", "version": 1})
        assert updated.status_code == 200 and updated.json()["version"] == 2
        assert (await http.put("/v1/templates/welcome", json={**EMAIL, "version": 1})).status_code == 409
    escapes = ["{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ cycler.__init__.__globals__ }}",
               "{% include '/etc/passwd' %}", "{{ self._TemplateReference__context }}", "{{ unknown_variable }}"]
    for source in escapes:
        refused = await campaigns.post("/v1/templates", {"name": "x", "channel": "sms",
                                                         "contents": {"en": {"text": source}}})
        assert refused.status_code == 422, (source, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    for bad in ({"name": "x", "channel": "sms", "contents": {}},                                # no locale
                {"name": "x", "channel": "sms", "contents": {"fr": {"text": "salut"}}},           # not a locale
                {"name": "x", "channel": "email", "contents": {"en": {"text": "no subject"}}},    # email needs one
                {"name": "x", "channel": "fax", "contents": {"en": {"text": "t"}}},
                {"name": "x", "channel": "sms", "contents": {"en": {"text": "t", "footer": "f"}}}):
        assert (await campaigns.post("/v1/templates", bad)).status_code == 422, bad


async def test_a_campaign_round_trip_its_rules_and_a_large_audience_waits_for_a_supervisor(campaigns):
    await campaigns.insert("members", [member(f"m{i}") for i in range(APPROVAL_AUDIENCE_SIZE + 2)])
    await campaigns.created("/v1/audiences", {"audience_id": "all", "name": "All", "definition": {}})
    await campaigns.created("/v1/templates", {"template_id": "welcome", **EMAIL})
    body = {"campaign_id": "spring", "name": "Spring", "kind": "one_shot", "audience_id": "all",
            "template_id": "welcome", "schedule": {},
            "actions": [{"kind": "message"}, {"kind": "coupon", "pool_id": "spring-10"}],
            "rules": {"control_share": 0.2, "quiet_hours": {"start": "21:00", "end": "09:00"},
                      "frequency_cap": {"count": 2, "days": 7}}}
    created = await campaigns.created("/v1/campaigns", body)
    assert created["status"] == "draft" and created["rules"]["conversion_days"] == 7
    for bad in ({**body, "campaign_id": "b1", "kind": "recurring"},                            # no occasion
                {**body, "campaign_id": "b2", "actions": [{"kind": "message"}, {"kind": "message"}]},
                {**body, "campaign_id": "b3", "template_id": None},                           # message, no template
                {**body, "campaign_id": "b4", "audience_id": "nobody"},
                {**body, "campaign_id": "b5", "rules": {"control_share": 0.9}},
                {**body, "campaign_id": "b6", "actions": [{"kind": "sms_blast"}]},
                {**body, "campaign_id": "b7", "kind": "triggered", "schedule": {"trigger": "moon_phase"}},
                {**body, "campaign_id": "b8", "schedule": {"send_at": "2026-01-01T10:00:00"}},  # no zone
                {**body, "campaign_id": "b9", "kind": "recurring", "schedule": {"occasion": "member_day"}},
                {**body, "campaign_id": "b10", "actions": []}):
        refused = await campaigns.post("/v1/campaigns", bad)
        assert refused.status_code == 422, (bad["campaign_id"], refused.text)
    triggered = await campaigns.created("/v1/campaigns", {
        "name": "Thanks", "kind": "triggered", "template_id": "welcome", "actions": [{"kind": "message"}],
        "schedule": {"trigger": "ticket_resolved", "match": ["complaint"], "wait_s": 3600}})
    assert triggered["schedule"] == {"trigger": "ticket_resolved", "match": ["complaint"], "wait_s": 3600}

    settings = {k: v for k, v in body.items() if k != "campaign_id"}  # the id is in the path
    async with campaigns.client() as http:
        changed = await http.put("/v1/campaigns/spring", json={**settings, "name": "Spring sale", "version": 1})
        assert changed.status_code == 200 and changed.json()["version"] == 2, changed.text
        assert [c["campaign_id"] for c in (await http.get("/v1/campaigns", params={"status": "draft"})).json()[
            "items"]] == [triggered["campaign_id"], "spring"]
        # Page by page with the cursor: each campaign once, newest first.
        first = (await http.get("/v1/campaigns", params={"status": "draft", "limit": 1})).json()
        second = (await http.get("/v1/campaigns", params={"status": "draft", "limit": 1,
                                                          "cursor": first["next_cursor"]})).json()
        bad = await http.get("/v1/campaigns", params={"cursor": "not-a-cursor"})
        assert [c["campaign_id"] for c in first["items"] + second["items"]] == [triggered["campaign_id"], "spring"]
        assert second["next_cursor"] is None and bad.status_code == 422
    activated = await campaigns.post("/v1/campaigns/spring/activate")
    assert activated.status_code == 200, activated.text
    assert activated.json()["status"] == "awaiting_approval"
    assert activated.json()["estimated_size"] == APPROVAL_AUDIENCE_SIZE + 2
    async with campaigns.client() as http:
        assert (await http.put("/v1/campaigns/spring", json={**settings, "version": 3})).status_code == 409
    assert (await campaigns.post("/v1/campaigns/spring/approve", identity=MARKETER)).status_code == 403
    approved = await campaigns.post("/v1/campaigns/spring/approve", identity=SUPERVISOR)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "active" and approved.json()["approved_by"] == SUPERVISOR.subject
    twice = await campaigns.post("/v1/campaigns/spring/approve", identity=SUPERVISOR)
    assert twice.status_code == 409 and twice.json()["campaign_status"] == "active"
    assert (await campaigns.post("/v1/campaigns/spring/pause")).json()["status"] == "paused"
    assert (await campaigns.post("/v1/campaigns/spring/resume")).json()["status"] == "active"
    # A triggered campaign without an audience estimates 0 and goes live without approval.
    live = await campaigns.post(f"/v1/campaigns/{triggered['campaign_id']}/activate")
    assert live.json()["status"] == "active" and live.json()["estimated_size"] == 0


async def test_service_callers_need_the_scope_and_agents_only_read_contacts(campaigns):
    reader = Identity(subject="apikey:r", role=Role.SERVICE, scopes=frozenset({"campaigns:read"}))
    manager = Identity(subject="apikey:m", role=Role.SERVICE, scopes=frozenset({"campaigns:manage"}))
    body = {"name": "All", "definition": {}}
    assert (await campaigns.post("/v1/audiences", body, identity=reader)).status_code == 403
    assert (await campaigns.post("/v1/audiences", body, identity=manager)).status_code == 201
    async with campaigns.client(reader) as http:
        assert (await http.get("/v1/audiences")).status_code == 200
        assert (await http.get("/v1/campaign-contacts", params={"customer_id": "c1"})).json() == {"items": []}
    async with campaigns.client(AGENT) as http:
        assert (await http.get("/v1/campaign-contacts", params={"customer_id": "c1"})).status_code == 200
        assert (await http.get("/v1/campaigns")).status_code == 403
    customer = Identity(subject="c1", role=Role.CUSTOMER, customer_id="c1")
    async with campaigns.client(customer) as http:
        assert (await http.get("/v1/campaign-contacts", params={"customer_id": "c1"})).status_code == 403


async def _seed_a_finished_campaign(campaigns) -> datetime:
    """A completed one-shot email campaign (conversion window 7 days) with its contacts, messages,
    actions and the orders that followed; returns when its contacts were made."""
    await campaigns.created("/v1/templates", {"template_id": "welcome", **EMAIL})
    at = NOW - timedelta(days=20)
    await campaigns.insert("campaigns", [{
        "campaign_id": "autumn", "name": "Autumn", "kind": "one_shot", "status": "completed",
        "template_id": "welcome", "schedule": "{}", "actions": '[{"kind": "message"}]',
        "rules": '{"control_share": 0.5, "conversion_days": 7}', "created_by": "marketer-1",
        "created_at": at, "updated_at": at}])

    def contact(customer_id, group, state="done", reason=None, occurrence="once", when=at):
        return {"campaign_id": "autumn", "occurrence_key": occurrence, "customer_id": customer_id,
                "group_name": group, "state": state, "skip_reason": reason, "due_at": when, "created_at": when,
                "contacted_at": when if state == "done" else None}
    await campaigns.insert("contacts", [
        *[contact(f"t{i}", "treatment") for i in range(10)], *[contact(f"c{i}", "control") for i in range(10)],
        contact("t5", "treatment", occurrence="again", when=at + timedelta(days=1)),  # a second contact
        contact("h0", "holdout"), contact("h1", "holdout"),
        contact("s0", "treatment", "skipped", "no_consent"), contact("s1", "treatment", "skipped", "frequency_cap"),
        contact("s2", "control", "skipped", "no_consent"), contact("p0", "treatment", "pending")])

    def order(customer_id, days, amount="100", currency="CNY", cancelled=False):
        return {"order_id": f"o-{uuid.uuid4().hex[:8]}", "customer_id": customer_id,
                "paid_at": at + timedelta(days=days), "currency": currency, "amount": Decimal(amount),
                "cancelled": cancelled}
    await campaigns.insert("conversions", [
        *[order(f"t{i}", 1) for i in range(6)], order("t0", 2, "50"), order("t1", 3, "80", "USD"),
        order("t6", -1), order("t7", 8), order("t8", 2, cancelled=True),   # before, after, cancelled: no
        order("c0", 1), order("c1", 6.5), order("c2", 1, "30", "USD"),        # c2 converts, no CNY revenue
        order("h0", 1)])

    def message(i, status, *stages):
        customer = f"t{i}"
        times = {f"{s}_at": at + timedelta(minutes=n + 1) for n, s in enumerate(stages)}
        return {"message_id": f"msg-{i}", "campaign_id": "autumn", "occurrence_key": "once", "customer_id": customer,
                "channel": "email", "status": status, "attempts": 1, "created_at": at + timedelta(seconds=i),
                **{f"{s}_at": times.get(f"{s}_at") for s in ("sent", "delivered", "opened", "clicked", "bounced",
                                                            "unsubscribed")}}
    full = ("sent", "delivered", "opened", "clicked")
    await campaigns.insert("messages", [
        message(0, "clicked", *full), message(1, "clicked", *full), message(2, "clicked", *full),
        message(3, "unsubscribed", *full, "unsubscribed"),
        *[message(i, "delivered", "sent", "delivered") for i in (4, 5, 6)],
        message(7, "bounced", "sent", "bounced"), message(8, "failed"), message(9, "suppressed")])
    await campaigns.insert("action_results", [
        *[{"campaign_id": "autumn", "occurrence_key": "once", "customer_id": f"t{i}", "kind": "coupon",
           "reference": f"cp{i}", "points": None, "at": at} for i in range(5)],
        *[{"campaign_id": "autumn", "occurrence_key": "once", "customer_id": f"t{i}", "kind": "bonus_points",
           "reference": f"ledger-{i}", "points": 50, "at": at} for i in range(2)]])
    await campaigns.insert("coupon_uses", [
        {"coupon_id": "cp0", "order_id": "u1", "used_at": at, "released": False},
        {"coupon_id": "cp1", "order_id": "u2", "used_at": at, "released": True},    # the order was cancelled
        {"coupon_id": "cp2", "order_id": "u3", "used_at": at, "released": False},
        {"coupon_id": "cp2", "order_id": "u4", "used_at": at, "released": False},
        {"coupon_id": "elsewhere", "order_id": "u5", "used_at": at, "released": False}])
    return at


async def test_results_count_contacts_messages_actions_and_the_lift_per_group(campaigns):
    await _seed_a_finished_campaign(campaigns)
    async with campaigns.client() as http:
        answer = await http.get("/v1/campaigns/autumn/results")
    assert answer.status_code == 200, answer.text
    results = answer.json()
    assert results["contacts"] == {"treatment": 11, "control": 10, "holdout": 2, "pending": 1,
                                   "skipped": {"no_consent": 2, "frequency_cap": 1}}
    assert results["messages"] == {"sent": 8, "delivered": 7, "opened": 4, "clicked": 4, "bounced": 1,
                                   "failed": 1, "unsubscribed": 1, "suppressed": 1}
    assert results["coupons"] == {"issued": 5, "redeemed": 2} and results["points_granted"] == 100
    assert results["conversion_days"] == 7
    measured = results["lift"]
    # Treatment: t0–t5 converted (t5's order inside both its windows counts once), t6–t9 not (an
    # order before the contact, after the window, a cancelled one, none); t0 spent 150, the
    # others 100 (t1's USD order converts but is not CNY revenue). Control: c0–c2 converted,
    # revenue 200 (c2 paid in USD).
    assert measured["currency"] == "CNY"
    assert measured["treatment"] == {"customers": 10, "converted": 6, "revenue": "650.0000"}
    assert measured["control"] == {"customers": 10, "converted": 3, "revenue": "200.0000"}
    expected = lift(GroupOutcome(10, 6, Decimal(650), Decimal(150**2 + 5 * 100**2)),
                    GroupOutcome(10, 3, Decimal(200), Decimal(2 * 100**2)))
    assert measured["treatment_rate"] == expected.treatment_rate == 0.6
    assert measured["difference"] == expected.difference
    assert measured["difference_interval"] == list(expected.difference_interval)
    assert measured["significant"] is expected.significant
    assert Decimal(measured["revenue_difference"]) == expected.revenue_difference == Decimal(45)
    assert [Decimal(v) for v in measured["revenue_interval"]] == list(expected.revenue_interval)


async def test_a_campaigns_messages_page_newest_first_and_a_customers_contacts(campaigns):
    at = await _seed_a_finished_campaign(campaigns)
    seen, cursor = [], None
    async with campaigns.client() as http:
        while True:
            page = (await http.get("/v1/campaigns/autumn/messages",
                                   params={"limit": 4, **({"cursor": cursor} if cursor else {})})).json()
            seen += [m["message_id"] for m in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"msg-{i}" for i in reversed(range(10))]
        delivered = (await http.get("/v1/campaigns/autumn/messages", params={"status": "delivered"})).json()
        assert {m["customer_id"] for m in delivered["items"]} == {"t4", "t5", "t6"}
        assert set(delivered["items"][0]) >= {"message_id", "customer_id", "channel", "status", "attempts", "sent_at"}
        assert (await http.get("/v1/campaigns/autumn/messages", params={"cursor": "garbage"})).status_code == 422
        assert (await http.get("/v1/campaigns/nope/messages")).status_code == 404
    async with campaigns.client(AGENT) as http:
        contacts = (await http.get("/v1/campaign-contacts", params={"customer_id": "t5"})).json()["items"]
    assert [(c["campaign_name"], c["channel"], c["group"], c["status"]) for c in contacts] == [
        ("Autumn", "email", "treatment", "done"),        # the second contact: no message recorded
        ("Autumn", "email", "treatment", "delivered")]
    assert datetime.fromisoformat(contacts[1]["contacted_at"]) == at
