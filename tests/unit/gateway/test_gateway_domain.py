"""The gateway's pure rules: route table, API key format, event screening, recorded calls, 360 parts,
settings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from crm_gateway.customer360 import PARTS, may_read, part_from_answer
from crm_gateway.domain import api_keys
from crm_gateway.domain.ingest import EventTooLarge, may_send_events, record_size, screen_batch, source_for
from crm_gateway.domain.interactions import InteractionRefused, event_id_for, interaction_event
from crm_gateway.domain.routes import ROUTES, SCOPES, Route, RouteTable
from crm_gateway.openapi import access_note
from crm_gateway.ratelimit import RateLimits
from crm_gateway.settings import GatewaySettings
from crm_shared.auth import MARKETING, SUPERVISOR, Forbidden, Identity, Role
from crm_shared.events.catalogue import validate_incoming
from pydantic import ValidationError

from tests.harness.events import customer_registered, interaction, order_paid

CUSTOMER = Identity(subject="c-1", role=Role.CUSTOMER, customer_id="c-1")
TRACKER = Identity(subject="apikey:0123456789abcdef", role=Role.SERVICE, scopes=frozenset({"interactions:write"}),
                   client="storefront-tracker")
BACK_OFFICE = Identity(subject="erp", role=Role.SERVICE,
                       scopes=frozenset({"interactions:write", "orders:write", "customers:write"}))
LIMIT = 1_000_000


def screen(batch, identity, limit=LIMIT):
    return screen_batch(batch, identity, max_record_bytes=limit)


def test_a_path_matches_its_route_with_parameters_and_unknown_paths_do_not():
    table = RouteTable()
    match = table.match("GET", "/v1/profiles/c-42")
    assert match.route.upstream == "profile" and match.params == {"customer_id": "c-42"}
    assert table.match("GET", "/v1/profiles/c-42/notes").route.path == "/v1/profiles/{customer_id}/notes"
    assert table.match("GET", "/v1/profiles/a/b/c").route is None
    assert table.match("GET", "/v1/profiles").route.path == "/v1/profiles"  # search, not a customer id
    assert table.match("GET", "/v1/nothing").route is None


def test_the_rfm_grid_is_its_own_route_not_a_segment_named_rfm_grid():
    table = RouteTable()
    assert table.match("GET", "/v1/segments/rfm-grid").route.path == "/v1/segments/rfm-grid"
    assert table.match("GET", "/v1/segments/rfm:loyal").params == {"segment_id": "rfm:loyal"}
    # Only GET: a supervisor's PUT or DELETE of that path still names a (custom) segment id.
    assert table.match("PUT", "/v1/segments/rfm-grid").route.path == "/v1/segments/{segment_id}"


def test_a_known_path_with_another_method_reports_the_allowed_methods():
    match = RouteTable().match("PUT", "/v1/events")
    assert match.route is None and match.allowed_methods == ("POST",)


def test_only_reads_and_deletes_count_as_idempotent():
    by_key = {(r.method, r.path): r for r in ROUTES}
    assert by_key[("GET", "/v1/profiles/{customer_id}")].idempotent
    assert not by_key[("POST", "/v1/profiles/{customer_id}/notes")].idempotent
    assert by_key[("DELETE", "/v1/api-keys/{key_id}")].idempotent


def test_scopes_are_the_ones_the_route_table_asks_for():
    assert SCOPES == {"customers:read", "profiles:read", "pii:read", "loyalty:read", "loyalty:redeem",
                      "loyalty:fulfil", "loyalty:bonus", "tickets:read", "tickets:write", "churn:read",
                      "interactions:write", "orders:write", "customers:write", "orders:read",
                      "coupons:issue", "coupons:validate", "campaigns:read", "campaigns:manage"}


def test_an_api_key_round_trips_and_only_its_own_secret_matches():
    new = api_keys.generate()
    key_id, secret = api_keys.parse(new.key)
    assert key_id == new.key_id and new.key.startswith("crm_")
    assert api_keys.secret_matches(secret, new.secret_hash)
    assert not api_keys.secret_matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), new.secret_hash)
    assert new.secret_hash != secret.encode()  # only the hash is kept
    assert api_keys.parse("crm_nothex_xyz") is None and api_keys.parse("Bearer abc") is None


def test_a_batch_is_split_into_accepted_events_and_reasons():
    good = interaction("c-1").to_structured()
    bad_kind = {**interaction("c-1").to_structured(), "data": {**good["data"], "kind": "teleport"}}
    unknown_type = {**interaction("c-1").to_structured(), "type": "commerce.nothing.happened"}
    internal = {**interaction("c-1").to_structured(), "type": "crm.profile.customer.updated"}
    float_money = order_paid("c-1").to_structured()
    float_money["data"]["total_amount"] = 12.5
    accepted, rejected = screen([good, bad_kind, unknown_type, internal, float_money, "junk", good], BACK_OFFICE)
    assert [e.id for e in accepted] == [good["id"]]
    reasons = {r.index: r.reason for r in rejected}
    assert set(reasons) == {1, 2, 3, 4, 5, 6}
    assert "kind" in reasons[1]
    assert "not accepted" in reasons[2] and "not accepted" in reasons[3]
    assert "total_amount" in reasons[4]
    assert "JSON object" in reasons[5]
    assert "earlier in this batch" in reasons[6]


def test_a_customer_may_send_only_interactions_about_themselves():
    own = interaction("c-1").to_structured()
    other = interaction("c-2").to_structured()
    order = order_paid("c-1").to_structured()
    accepted, rejected = screen([own, other, order], CUSTOMER)
    assert [e.id for e in accepted] == [own["id"]]
    assert {r.index for r in rejected} == {1, 2}
    # The same batch from the shop's back end with the scopes is fine.
    assert len(screen([own, other, order], BACK_OFFICE)[0]) == 3


def test_a_service_caller_sends_only_the_event_families_its_scopes_name():
    view = interaction("c-1").to_structured()
    paid = order_paid("c-1").to_structured()
    update = {**customer_registered("c-1").to_structured(), "type": "commerce.customer.updated"}
    accepted, rejected = screen([view, paid, update], TRACKER)
    assert [e.id for e in accepted] == [view["id"]]
    assert [(r.index, r.reason) for r in rejected] == [
        (1, "sending 'commerce.order.paid' events needs the 'orders:write' scope"),
        (2, "sending 'commerce.customer.updated' events needs the 'customers:write' scope")]
    order_system = Identity(subject="oms", role=Role.SERVICE, scopes=frozenset({"orders:write"}))
    accepted, rejected = screen([view, paid, update], order_system)
    assert [e.id for e in accepted] == [paid["id"]] and [r.index for r in rejected] == [0, 2]
    assert [e.id for e in screen([view, paid, update], BACK_OFFICE)[0]] == [view["id"], paid["id"], update["id"]]
    # Staff (should the route admit them) record interactions only.
    agent = Identity(subject="agent-1", role=Role.AGENT)
    assert [e.id for e in screen([view, paid, update], agent)[0]] == [view["id"]]
    assert not may_send_events(Identity(subject="ro", role=Role.SERVICE, scopes=frozenset({"churn:read"})))
    assert may_send_events(TRACKER) and may_send_events(CUSTOMER)


def test_the_gateway_sets_each_events_source_from_the_caller_never_from_the_body():
    forged = {**interaction("c-1").to_structured(), "source": "shop/accounts"}
    assert screen([forged], CUSTOMER)[0][0].source == "/crm/gateway/customers/c-1"
    assert screen([forged], TRACKER)[0][0].source == "/crm/gateway/api-clients/storefront-tracker"
    assert screen([forged], BACK_OFFICE)[0][0].source == "/crm/gateway/service/erp"
    # A rotated key of the same client keeps the source, so a resend is still a duplicate.
    rotated = Identity(subject="apikey:fedcba9876543210", role=Role.SERVICE, scopes=TRACKER.scopes,
                       client="storefront-tracker")
    assert source_for(rotated) == source_for(TRACKER)
    # Names are escaped: no caller's source is another's, nor reaches outside its namespace.
    assert source_for(Identity(subject="a/b", role=Role.CUSTOMER, customer_id="a/b")) == \
        "/crm/gateway/customers/a%2Fb"
    assert source_for(Identity(subject="c-1", role=Role.SERVICE)) != source_for(CUSTOMER)
    long_subject = Identity(subject="x" * 600, role=Role.SERVICE)
    assert len(source_for(long_subject)) <= 500
    assert source_for(long_subject) != source_for(Identity(subject="x" * 601, role=Role.SERVICE))


def test_an_event_that_would_not_fit_in_a_kafka_record_refuses_the_batch():
    # 1e15 is 4 bytes in the body and 18 once parsed and written again (1000000000000000.0).
    padded = interaction("c-1").to_structured()
    padded["data"]["padding"] = [1e15] * 60_000
    body_bytes = len(orjson.dumps([padded]).replace(b"1000000000000000.0", b"1e15"))
    assert body_bytes < 310_000
    with pytest.raises(EventTooLarge) as refused:
        screen([interaction("c-1").to_structured(), padded], BACK_OFFICE, limit=1_000_000)
    assert refused.value.index == 1 and refused.value.size > 1_000_000 and refused.value.limit == 1_000_000
    accepted, _ = screen([padded], BACK_OFFICE, limit=2_000_000)
    assert record_size(accepted[0]) == refused.value.size


def test_interaction_attributes_are_bounded_in_depth_and_size():
    def nested(levels: int) -> dict:
        value: dict = {}
        for _ in range(levels - 1):
            value = {"a": value}
        return value

    at_limit = interaction("c-1", attributes=nested(8)).to_structured()
    too_deep = interaction("c-1", attributes=nested(9)).to_structured()
    far_too_deep = interaction("c-1", attributes=nested(255)).to_structured()
    lists_too_deep = interaction("c-1", attributes={"a": [[[[[[[[["x"]]]]]]]]]}).to_structured()
    too_big = interaction("c-1", attributes={"text": "x" * 40_000}).to_structured()
    elsewhere = interaction("c-1").to_structured()
    elsewhere["data"]["extra"] = nested(300)  # not attributes, but no serialiser writes it either
    accepted, rejected = screen([at_limit, too_deep, far_too_deep, lists_too_deep, too_big, elsewhere], BACK_OFFICE)
    assert [e.id for e in accepted] == [at_limit["id"]]
    assert [(r.index, r.reason) for r in rejected] == [
        (1, "data.attributes: nested deeper than 8 levels"), (2, "data.attributes: nested deeper than 8 levels"),
        (3, "data.attributes: nested deeper than 8 levels"), (4, "data.attributes: larger than 32768 bytes as JSON"),
        (5, "the event's data is nested too deeply")]


def test_the_subject_defaults_to_the_customer_and_may_not_contradict_it():
    missing = interaction("c-1").to_structured()
    del missing["subject"]
    wrong = {**interaction("c-1").to_structured(), "subject": "c-2"}
    accepted, rejected = screen([missing, wrong], TRACKER)
    assert accepted[0].subject == "c-1"
    assert rejected[0].index == 1 and "subject" in rejected[0].reason


def test_a_360_part_reflects_the_services_answer():
    assert part_from_answer(200, b'{"a": 1}').data == {"a": 1}
    assert part_from_answer(404, b"{}").status == "not_found"
    assert part_from_answer(500, b"").status == "unavailable"
    assert part_from_answer(403, b"{}").status == "forbidden"
    assert part_from_answer(200, b"not json").status == "unavailable"


def test_settings_refuse_mixing_hmac_with_public_keys_and_the_none_algorithm():
    with pytest.raises(ValidationError, match="only asymmetric"):
        GatewaySettings(jwt_jwks_url="https://idp.example/jwks.json", jwt_algorithms=["RS256", "HS256"])
    with pytest.raises(ValidationError, match="unsupported"):
        GatewaySettings(jwt_algorithms=["none"])
    with pytest.raises(ValidationError, match="need JWT_JWKS_URL"):
        GatewaySettings(jwt_algorithms=["RS256"])
    assert GatewaySettings(jwt_jwks_url="https://idp.example/jwks.json").verification_algorithms == ["RS256", "ES256"]
    assert GatewaySettings().verification_algorithms == ["HS256"]


def test_production_needs_a_real_jwt_secret_unless_tokens_come_from_a_jwks_url():
    real = "0f9e8d7c6b5a49382716a5b4c3d2e1f00f9e8d7c"
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        GatewaySettings(environment="prod", auth_secret=real)
    assert GatewaySettings(environment="prod", auth_secret=real, jwt_jwks_url="https://idp.example/jwks")


def test_a_recorded_call_is_an_interaction_event_with_the_agent_from_the_token_and_a_stable_id():
    now = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    agent, other = Identity(subject="agent-7", role=Role.AGENT), Identity(subject="agent-8", role=Role.AGENT)

    def call(identity: Identity = agent, key: str = "key-00000001", **changes):
        fields = {"customer_id": "c-1", "identity": identity, "idempotency_key": key, "kind": "call",
                  "occurred_at": now - timedelta(minutes=10), "channel": None, "direction": "inbound",
                  "duration_s": 240, "ticket_id": None, "now": now, **changes}
        return interaction_event(**fields)

    event = call()
    assert (event.type, event.source, event.subject, event.time) == (
        "commerce.interaction.recorded", "/crm/gateway/call-centre", "c-1", now)
    assert event.data == {"customer_id": "c-1", "kind": "call", "channel": "phone",
                          "occurred_at": "2026-11-02T09:50:00Z",
                          "attributes": {"recorded_by": "agent-7", "direction": "inbound", "duration_s": 240}}
    assert validate_incoming(event.to_structured())[1].kind == "call"  # a valid catalogue event
    # A retry (same agent, same key) is the same event; another key or another agent is another.
    assert call().id == event.id == event_id_for(agent, "key-00000001")
    assert len({event.id, call(key="key-00000002").id, call(identity=other).id}) == 3
    assert call(kind="chat", channel="whatsapp").data["channel"] == "whatsapp"
    assert call(kind="chat").data["channel"] == "chat"
    assert call(occurred_at=now + timedelta(minutes=5)).data["occurred_at"] == "2026-11-02T10:05:00Z"
    for refused in (now + timedelta(minutes=6), now - timedelta(days=367)):
        with pytest.raises(InteractionRefused):
            call(occurred_at=refused)


# --- Campaigns: the marketer role, the campaigns routes, the public routes (issue 20).

MARKETER = Identity(subject="m-1", role=Role.MARKETER)
CAMPAIGNS_SERVICE_SCOPES = frozenset({"campaigns:read", "campaigns:manage"})
# Route → who may call it, written by hand: a marketer is let in here and nowhere else.
MARKETING_ROUTES = {
    **{(m, p): {"marketer", "supervisor", "service"} for m, p in (
        ("POST", "/v1/audiences"), ("GET", "/v1/audiences"), ("GET", "/v1/audiences/{audience_id}"),
        ("PUT", "/v1/audiences/{audience_id}"), ("GET", "/v1/audiences/{audience_id}/estimate"),
        ("POST", "/v1/templates"), ("GET", "/v1/templates"), ("GET", "/v1/templates/{template_id}"),
        ("PUT", "/v1/templates/{template_id}"), ("POST", "/v1/templates/{template_id}/preview"),
        ("POST", "/v1/campaigns"), ("GET", "/v1/campaigns"), ("GET", "/v1/campaigns/{campaign_id}"),
        ("PUT", "/v1/campaigns/{campaign_id}"))},
    **{("POST", f"/v1/campaigns/{{campaign_id}}/{a}"): {"marketer", "supervisor"}
       for a in ("activate", "pause", "resume")},
    ("GET", "/v1/campaigns/{campaign_id}/results"): {"marketer", "supervisor"},
    ("GET", "/v1/campaigns/{campaign_id}/messages"): {"marketer", "supervisor"},
    ("GET", "/v1/campaign-contacts"): {"agent", "supervisor", "marketer", "service"},
}
# Aggregates of the profile's segments (definitions, sizes, the RFM grid): no customer id, no PII.
# How churn risk is spread (counts and value per level): an aggregate too.
CHURN_DISTRIBUTION = ("GET", "/v1/churn/distribution")
SEGMENT_AGGREGATES = {("GET", "/v1/segments"), ("GET", "/v1/segments/{segment_id}"), ("GET", "/v1/segments/rfm-grid")}
APPROVE = ("POST", "/v1/campaigns/{campaign_id}/approve")
PUBLIC_ROUTES = {("GET", "/v1/public/unsubscribe/{token}"), ("POST", "/v1/public/unsubscribe/{token}"),
                 ("POST", "/v1/public/delivery-status")}
# The gateway's own public routes: the console's sign-in (session.py).
SESSION_PUBLIC_ROUTES = {("GET", "/v1/session/config"), ("POST", "/v1/session/dev"),
                         ("GET", "/v1/session/oidc/login"), ("GET", "/v1/session/oidc/callback"),
                         ("DELETE", "/v1/session")}
WHO_AM_I = ("GET", "/v1/session")  # every signed-in caller, whatever the role


def _may(identity: Identity, route) -> bool:
    try:
        identity.authorize(route.roles, scope=route.scope, customer_id="c-1" if route.customer_param else None)
    except Forbidden:
        return False
    return True


def test_a_marketer_is_refused_every_route_but_the_marketing_ones():
    allowed = {(r.method, r.path) for r in ROUTES if not r.public and _may(MARKETER, r)}
    assert allowed == set(MARKETING_ROUTES) | SEGMENT_AGGREGATES | {WHO_AM_I, CHURN_DISTRIBUTION}
    assert not _may(MARKETER, next(r for r in ROUTES if (r.method, r.path) == APPROVE))
    # In particular nothing that shows a customer's data: profiles, the 360, loyalty, tickets, churn,
    # a segment's members.
    for path in ("/v1/customers/c-1", "/v1/profiles/c-1", "/v1/profiles", "/v1/loyalty/accounts/c-1",
                 "/v1/tickets", "/v1/churn/customers/c-1", "/v1/segments/rfm:loyal/members"):
        assert not _may(MARKETER, RouteTable().match("GET", path).route), path


def test_the_campaigns_routes_go_to_the_campaigns_service_with_their_roles_and_scopes():
    table = RouteTable()
    campaigns = {(r.method, r.path): r for r in ROUTES if r.upstream == "campaigns"}
    assert set(campaigns) == set(MARKETING_ROUTES) | {APPROVE} | PUBLIC_ROUTES
    for key, callers in MARKETING_ROUTES.items():
        assert campaigns[key].roles == {Role(c) for c in callers}, key
        wanted = ("campaigns:read" if key[0] == "GET" else "campaigns:manage") if "service" in callers else None
        assert campaigns[key].scope == wanted, key
    assert campaigns[APPROVE].roles == {Role.SUPERVISOR}
    # A service caller needs the scope of the kind of call: reading is not managing.
    reader = Identity(subject="bi", role=Role.SERVICE, scopes=frozenset({"campaigns:read"}))
    assert _may(reader, campaigns[("GET", "/v1/campaigns")])
    assert not _may(reader, campaigns[("POST", "/v1/campaigns")])
    assert _may(Identity(subject="x", role=Role.SERVICE, scopes=CAMPAIGNS_SERVICE_SCOPES),
                campaigns[("PUT", "/v1/audiences/{audience_id}")])
    assert not _may(CUSTOMER, campaigns[("GET", "/v1/campaign-contacts")])
    # Actions match their own route, not the campaign's.
    assert table.match("POST", "/v1/campaigns/cmp-1/approve").route.path == "/v1/campaigns/{campaign_id}/approve"
    assert table.match("GET", "/v1/campaigns/cmp-1").params == {"campaign_id": "cmp-1"}
    assert table.match("GET", "/v1/campaign-contacts").route.scope == "campaigns:read"


def test_public_routes_name_no_role_and_only_public_paths_may_be_public():
    public = {(r.method, r.path): r for r in ROUTES if r.public}
    assert set(public) == PUBLIC_ROUTES | SESSION_PUBLIC_ROUTES
    assert all(r.roles == frozenset() and r.scope is None for r in public.values())
    assert all(public[key].upstream == "campaigns" for key in PUBLIC_ROUTES)
    assert all(public[key].upstream is None for key in SESSION_PUBLIC_ROUTES)
    assert RouteTable().match("POST", "/v1/public/unsubscribe/abc.def").route.public
    assert not any(r.public for r in ROUTES if not r.path.startswith(("/v1/public/", "/v1/session")))
    for bad in (dict(path="/v1/campaigns", roles=frozenset()), dict(path="/v1/public/x", roles=MARKETING),
                dict(path="/v1/public/x", roles=frozenset(), scope="campaigns:read"),
                dict(path="/v1/session/x", roles=frozenset())):  # an upstream is never the gateway's sign-in
        with pytest.raises(ValueError, match="public route"):
            Route("GET", upstream="campaigns", public=True, **bad)
    # The gateway serves nothing without identity but its sign-in routes.
    for path in ("/v1/public/x", "/v1/sessions", "/v1/sessionx/y", "/v1/api-keys"):
        with pytest.raises(ValueError, match="public route"):
            Route("GET", path, frozenset(), public=True)
    with pytest.raises(ValueError, match="public route"):
        Route("GET", "/v1/session/x", SUPERVISOR, public=True)
    assert Route("GET", "/v1/session/x", frozenset(), public=True).upstream is None


def test_who_am_i_is_for_every_signed_in_role_and_the_gateway_answers_it():
    route = RouteTable().match(*WHO_AM_I).route
    assert not route.public and route.upstream is None and route.scope is None
    assert route.roles == set(Role)
    assert RouteTable().match("DELETE", "/v1/session").route.public
    assert RouteTable().match("PUT", "/v1/session").allowed_methods == ("DELETE", "GET")


def test_campaigns_is_an_upstream_with_its_own_url():
    assert GatewaySettings().upstream_urls["campaigns"] == "http://127.0.0.1:8005"
    assert GatewaySettings(campaigns_url="http://campaigns:8005").upstream_urls["campaigns"] == \
        "http://campaigns:8005"


def test_the_360s_campaign_contacts_are_asked_for_the_callers_the_route_admits_and_prove_nobody_exists():
    contacts = next(p for p in PARTS if p.part == "campaign_contacts")
    assert (contacts.upstream, contacts.target) == (
        "campaigns", "/v1/campaign-contacts?customer_id={customer_id}&limit=10")
    table = RouteTable()
    assert may_read(contacts, "c-1", Identity(subject="agent-1", role=Role.AGENT), table)
    assert not may_read(contacts, "c-1", CUSTOMER, table)
    churn = next(p for p in PARTS if p.part == "churn")
    assert not may_read(churn, "c-1", CUSTOMER, table)
    profile = next(p for p in PARTS if p.part == "profile")
    assert may_read(profile, "c-1", CUSTOMER, table) and not may_read(profile, "c-2", CUSTOMER, table)
    integration = Identity(subject="erp", role=Role.SERVICE, scopes=frozenset({"customers:read", "profiles:read"}))
    assert may_read(profile, "c-1", integration, table) and not may_read(contacts, "c-1", integration, table)
    # Contacts, even unavailable ones, never make an unknown customer known (the 404 stays a 404).
    some = part_from_answer(200, b'{"items": [{"campaign_id": "cmp-1"}]}')
    assert not contacts.knows_customer(some) and not contacts.knows_customer(part_from_answer(503, b""))


def test_public_routes_are_described_as_such_in_the_openapi_document():
    by_key = {(r.method, r.path): r for r in ROUTES}
    assert access_note(by_key[("POST", "/v1/public/unsubscribe/{token}")]).startswith("**Public:**")
    assert access_note(by_key[APPROVE]) == "**Allowed roles:** supervisor."
    assert "sign-in" in access_note(by_key[("POST", "/v1/session/dev")])


def test_public_traffic_counts_against_its_address_alone():
    async def run():
        limits = RateLimits(GatewaySettings(rate_limit_address="2/minute"))
        first = [await limits.check_address("203.0.113.7") for _ in range(3)]
        other = await limits.check_address("198.51.100.1")
        return first, other, limits.public_policies
    first, other, policies = asyncio.run(run())
    assert [d.allowed for d in first] == [True, True, False] and first[2].policy == "address"
    assert other.allowed and policies == '"address";q=2;w=60'
