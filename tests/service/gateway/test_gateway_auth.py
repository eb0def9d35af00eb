"""Who may do what, through the real gateway and services: the authorization matrix, refused
tokens, API keys, production JWKS keys, and the services' own check of the forwarded identity."""

from __future__ import annotations

import base64
import json
import uuid

import jwt
import pytest
from aiohttp import web
from crm_gateway.domain.routes import ROUTES
from crm_shared.auth import Identity, IdentityCodec, Role
from crm_shared.devstack import free_port
from crm_shared.events.catalogue import TOPIC_CUSTOMERS, TOPIC_INTERACTIONS, TOPIC_ORDERS
from crm_shared.events.envelope import from_kafka
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.harness.events import customer_registered, interaction, new_customer_id, order_paid
from tests.harness.infra import TEST_AUTH_SECRET, identity_headers, wait_until
from tests.service.gateway.conftest import CAMPAIGNS_INSTALLED, TEST_JWT_SECRET, UPSTREAMS, bearer, token

ALL_SCOPES = ("customers:read", "profiles:read", "interactions:write", "orders:write", "customers:write",
              "loyalty:read", "loyalty:redeem", "loyalty:fulfil", "loyalty:bonus", "tickets:read", "tickets:write",
              "churn:read",
              "orders:read", "coupons:issue", "coupons:validate", "campaigns:read", "campaigns:manage")

CALLERS = ("customer_a", "customer_b", "agent", "supervisor", "service", "service_without_scope", "marketer")
PUBLIC = frozenset(CALLERS)
# Route → the callers allowed. Written out by hand (not derived from the route table), so a
# change of policy shows up here as a failing test that someone has to agree with.
EXPECTED = {
    ("GET", "/v1/customers/{customer_id}"): {"customer_a", "agent", "supervisor", "service"},
    # Any customer may post a batch; events about someone else are rejected one by one (below).
    ("POST", "/v1/events"): {"customer_a", "customer_b", "service"},
    # The call centre records a phone call or chat (the agent from the token).
    ("POST", "/v1/customers/{customer_id}/interactions"): {"agent", "supervisor"},
    ("GET", "/v1/api-keys"): {"supervisor"},
    ("POST", "/v1/api-keys"): {"supervisor"},
    ("DELETE", "/v1/api-keys/{key_id}"): {"supervisor"},
    # The console's sign-in: public (the gateway hands out or drops a credential; in this test
    # environment the dev sign-in works and OIDC is not configured, a 404). Who am I: everyone.
    ("GET", "/v1/session/config"): PUBLIC,
    ("POST", "/v1/session/dev"): PUBLIC,
    ("GET", "/v1/session/oidc/login"): PUBLIC,
    ("GET", "/v1/session/oidc/callback"): PUBLIC,
    ("DELETE", "/v1/session"): PUBLIC,
    ("GET", "/v1/session"): set(CALLERS),
    ("GET", "/v1/profiles/{customer_id}"): {"customer_a", "agent", "supervisor", "service"},
    ("GET", "/v1/profiles"): {"agent", "supervisor"},
    ("PATCH", "/v1/profiles/{customer_id}"): {"agent", "supervisor"},
    ("GET", "/v1/audit/pii-access"): {"supervisor"},
    # An IVR or another integration reads order history with the orders:read scope.
    ("GET", "/v1/profiles/{customer_id}/orders"): {"customer_a", "agent", "supervisor", "service"},
    ("GET", "/v1/profiles/{customer_id}/timeline"): {"agent", "supervisor"},
    ("GET", "/v1/profiles/{customer_id}/export"): {"customer_a", "supervisor"},
    ("GET", "/v1/profiles/{customer_id}/notes"): {"agent", "supervisor"},
    ("POST", "/v1/profiles/{customer_id}/notes"): {"agent", "supervisor"},
    ("GET", "/v1/profiles/{customer_id}/duplicates"): {"agent", "supervisor"},
    ("POST", "/v1/profiles/{customer_id}/merge"): {"supervisor"},
    ("POST", "/v1/profiles/{customer_id}/unmerge"): {"supervisor"},
    # Segment definitions and sizes, and the RFM grid, are aggregates (no customer id, no PII):
    # marketers plan audiences with them. The members list customers: staff only.
    ("GET", "/v1/segments"): {"agent", "supervisor", "marketer"},
    ("GET", "/v1/segments/rfm-grid"): {"agent", "supervisor", "marketer"},
    ("POST", "/v1/segments"): {"supervisor"},
    ("POST", "/v1/segments/refresh"): {"supervisor"},
    ("GET", "/v1/segments/{segment_id}"): {"agent", "supervisor", "marketer"},
    ("PUT", "/v1/segments/{segment_id}"): {"supervisor"},
    ("DELETE", "/v1/segments/{segment_id}"): {"supervisor"},
    ("GET", "/v1/segments/{segment_id}/members"): {"agent", "supervisor"},
    ("GET", "/v1/loyalty/accounts/{customer_id}"): {"customer_a", "agent", "supervisor", "service"},
    ("GET", "/v1/loyalty/accounts/{customer_id}/ledger"): {"customer_a", "agent", "supervisor", "service"},
    ("GET", "/v1/loyalty/accounts/{customer_id}/balance"): {"customer_a", "agent", "supervisor", "service"},
    ("GET", "/v1/loyalty/accounts/{customer_id}/expiries"): {"customer_a", "agent", "supervisor", "service"},
    ("GET", "/v1/loyalty/accounts/{customer_id}/redemptions"): {"customer_a", "agent", "supervisor", "service"},
    ("POST", "/v1/loyalty/accounts/{customer_id}/redemptions"): {"customer_a", "agent", "supervisor", "service"},
    ("POST", "/v1/loyalty/accounts/{customer_id}/adjustments"): {"agent", "supervisor"},
    # An agent asks for an adjustment above their limit; only a supervisor sees the queue and decides.
    ("POST", "/v1/loyalty/accounts/{customer_id}/adjustment-requests"): {"agent", "supervisor"},
    ("GET", "/v1/loyalty/adjustment-requests"): {"supervisor"},
    ("GET", "/v1/loyalty/adjustment-requests/{request_id}"): {"agent", "supervisor"},
    ("POST", "/v1/loyalty/adjustment-requests/{request_id}/decision"): {"supervisor"},
    ("POST", "/v1/loyalty/accounts/{customer_id}/bonuses"): {"supervisor", "service"},
    ("GET", "/v1/loyalty/programme"): {"customer_a", "customer_b", "agent", "supervisor", "service"},
    ("GET", "/v1/loyalty/programme/versions"): {"supervisor"},
    ("GET", "/v1/loyalty/reports/liability"): {"supervisor"},
    ("PUT", "/v1/loyalty/programme"): {"supervisor"},
    ("POST", "/v1/loyalty/jobs/{job}"): {"supervisor"},
    ("GET", "/v1/loyalty/accounts/{customer_id}/referrals"): {"customer_a", "agent", "supervisor", "service"},
    # The reward catalogue: anyone reads it; a customer redeems for themselves; fulfilment by
    # supervisors and fulfilment systems (loyalty:fulfil).
    ("GET", "/v1/loyalty/rewards"): {"customer_a", "customer_b", "agent", "supervisor", "service"},
    ("GET", "/v1/loyalty/rewards/{reward_id}"): {"customer_a", "customer_b", "agent", "supervisor", "service"},
    ("POST", "/v1/loyalty/rewards"): {"supervisor"},
    ("PUT", "/v1/loyalty/rewards/{reward_id}"): {"supervisor"},
    ("GET", "/v1/loyalty/accounts/{customer_id}/reward-redemptions"): {"customer_a", "agent", "supervisor", "service"},
    ("POST", "/v1/loyalty/accounts/{customer_id}/reward-redemptions"):
        {"customer_a", "agent", "supervisor", "service"},
    ("GET", "/v1/loyalty/reward-redemptions/{redemption_id}"): {"agent", "supervisor", "service"},
    ("POST", "/v1/loyalty/reward-redemptions/{redemption_id}/fulfilment"): {"supervisor", "service"},
    ("POST", "/v1/loyalty/coupon-pools"): {"supervisor"},
    ("GET", "/v1/loyalty/coupon-pools"): {"agent", "supervisor"},
    ("GET", "/v1/loyalty/coupon-pools/{pool_id}"): {"agent", "supervisor"},
    ("PUT", "/v1/loyalty/coupon-pools/{pool_id}"): {"supervisor"},
    # A supervisor by hand, or an integration (a campaign tool) with coupons:issue.
    ("POST", "/v1/loyalty/coupon-pools/{pool_id}/coupons"): {"supervisor", "service"},
    ("GET", "/v1/loyalty/coupons/{coupon_id}"): {"agent", "supervisor"},
    ("POST", "/v1/loyalty/coupons/{coupon_id}/revocation"): {"supervisor"},
    ("GET", "/v1/loyalty/accounts/{customer_id}/coupons"): {"customer_a", "agent", "supervisor", "service"},
    # The path names nobody: the gateway lets customer B through and the service refuses a body
    # naming customer A (403).
    ("POST", "/v1/coupons/validate"): {"customer_a", "agent", "supervisor", "service"},
    ("POST", "/v1/tickets"): {"customer_a", "agent", "supervisor", "service"},
    ("GET", "/v1/tickets"): {"customer_a", "agent", "supervisor", "service"},
    # A ticket id names no customer: the gateway lets customers through, the service answers 404
    # for a ticket that is not theirs.
    ("GET", "/v1/tickets/{ticket_id}"): {"customer_a", "customer_b", "agent", "supervisor", "service"},
    ("PATCH", "/v1/tickets/{ticket_id}"): {"agent", "supervisor"},
    ("POST", "/v1/tickets/{ticket_id}/transitions"): {"agent", "supervisor"},
    ("POST", "/v1/tickets/{ticket_id}/assignment"): {"agent", "supervisor"},
    ("GET", "/v1/tickets/{ticket_id}/history"): {"agent", "supervisor"},
    ("GET", "/v1/tickets/{ticket_id}/comments"): {"customer_a", "customer_b", "agent", "supervisor"},
    ("POST", "/v1/tickets/{ticket_id}/comments"): {"customer_a", "customer_b", "agent", "supervisor"},
    ("GET", "/v1/tickets/{ticket_id}/attachments"): {"customer_a", "customer_b", "agent", "supervisor"},
    ("POST", "/v1/tickets/{ticket_id}/attachments"): {"customer_a", "customer_b", "agent", "supervisor"},
    # Staff record an answer given on the phone (marked as recorded by them).
    ("POST", "/v1/tickets/{ticket_id}/csat"): {"customer_a", "customer_b", "agent", "supervisor"},
    ("GET", "/v1/ticketing/groups"): {"agent", "supervisor"},
    ("PUT", "/v1/ticketing/groups/{group_id}"): {"supervisor"},
    ("GET", "/v1/ticketing/agents"): {"agent", "supervisor"},
    ("PUT", "/v1/ticketing/agents/{agent_id}"): {"supervisor"},
    ("PUT", "/v1/ticketing/agents/{agent_id}/availability"): {"agent", "supervisor"},
    ("GET", "/v1/ticketing/policy"): {"agent", "supervisor"},
    ("PUT", "/v1/ticketing/policy"): {"supervisor"},
    ("GET", "/v1/ticketing/reports"): {"supervisor"},
    ("POST", "/v1/ticketing/sla-scan"): {"supervisor"},
    ("GET", "/v1/kb/articles"): {"agent", "supervisor"},
    ("POST", "/v1/kb/articles"): {"supervisor"},
    ("GET", "/v1/kb/articles/{article_id}"): {"agent", "supervisor"},
    ("PUT", "/v1/kb/articles/{article_id}"): {"supervisor"},
    ("GET", "/v1/churn/customers/{customer_id}"): {"agent", "supervisor", "service"},
    ("GET", "/v1/churn/customers"): {"agent", "supervisor", "service"},
    ("GET", "/v1/churn/model"): {"agent", "supervisor", "service"},
    ("POST", "/v1/churn/model/refit"): {"supervisor"},
    # Campaigns: marketers and supervisors, integrations with campaigns:read / campaigns:manage.
    ("POST", "/v1/audiences"): {"marketer", "supervisor", "service"},
    ("GET", "/v1/audiences"): {"marketer", "supervisor", "service"},
    ("GET", "/v1/audiences/{audience_id}"): {"marketer", "supervisor", "service"},
    ("PUT", "/v1/audiences/{audience_id}"): {"marketer", "supervisor", "service"},
    ("GET", "/v1/audiences/{audience_id}/estimate"): {"marketer", "supervisor", "service"},
    ("POST", "/v1/templates"): {"marketer", "supervisor", "service"},
    ("GET", "/v1/templates"): {"marketer", "supervisor", "service"},
    ("GET", "/v1/templates/{template_id}"): {"marketer", "supervisor", "service"},
    ("PUT", "/v1/templates/{template_id}"): {"marketer", "supervisor", "service"},
    ("POST", "/v1/templates/{template_id}/preview"): {"marketer", "supervisor", "service"},
    ("POST", "/v1/campaigns"): {"marketer", "supervisor", "service"},
    ("GET", "/v1/campaigns"): {"marketer", "supervisor", "service"},
    ("GET", "/v1/campaigns/{campaign_id}"): {"marketer", "supervisor", "service"},
    ("PUT", "/v1/campaigns/{campaign_id}"): {"marketer", "supervisor", "service"},
    ("POST", "/v1/campaigns/{campaign_id}/activate"): {"marketer", "supervisor"},
    ("POST", "/v1/campaigns/{campaign_id}/pause"): {"marketer", "supervisor"},
    ("POST", "/v1/campaigns/{campaign_id}/resume"): {"marketer", "supervisor"},
    # The second pair of eyes: a marketer prepares a campaign, a supervisor approves it.
    # Aggregates naming no customer: marketers size campaigns with them.
    ("GET", "/v1/churn/distribution"): {"agent", "supervisor", "service", "marketer"},
    ("POST", "/v1/campaigns/{campaign_id}/approve"): {"supervisor"},
    ("GET", "/v1/campaigns/{campaign_id}/results"): {"marketer", "supervisor"},
    ("GET", "/v1/campaigns/{campaign_id}/messages"): {"marketer", "supervisor"},
    ("GET", "/v1/campaign-contacts"): {"agent", "supervisor", "marketer", "service"},
    # Public: nobody is refused by the gateway (the service checks the signed token or body).
    ("GET", "/v1/public/unsubscribe/{token}"): PUBLIC,
    ("POST", "/v1/public/unsubscribe/{token}"): PUBLIC,
    ("POST", "/v1/public/delivery-status"): PUBLIC,
    # Last: it erases customer A.
    ("POST", "/v1/profiles/{customer_id}/erasure"): {"supervisor"},
}


def caller_headers(caller: str, customer_a: str) -> dict[str, str]:
    return {
        "customer_a": lambda: bearer("customer", customer_a),
        "customer_b": lambda: bearer("customer", new_customer_id()),
        "agent": lambda: bearer("agent", "agent-1"),
        "supervisor": lambda: bearer("supervisor", "sup-1"),
        "service": lambda: bearer("service", "erp", scopes=ALL_SCOPES),
        "service_without_scope": lambda: bearer("service", "erp-readonly"),
        "marketer": lambda: bearer("marketer", "marketer-1"),
    }[caller]()


def request_for(method: str, path: str, customer: str) -> dict:
    url = (path.replace("{customer_id}", customer).replace("{key_id}", uuid.uuid4().hex[:16])
           .replace("{segment_id}", "matrix-seg").replace("{job}", "release").replace("{ticket_id}", "t-matrix")
           .replace("{group_id}", "matrix-desk").replace("{agent_id}", "agent-1").replace("{article_id}", "kb-x")
           .replace("{reward_id}", "matrix-reward").replace("{redemption_id}", "r-matrix")
           .replace("{pool_id}", "matrix-pool").replace("{coupon_id}", "no-such-coupon")
           .replace("{audience_id}", "matrix-audience").replace("{template_id}", "matrix-template")
           .replace("{campaign_id}", "matrix-campaign").replace("{request_id}", "AR-999999")
           .replace("{token}", "not-a-signed-token"))
    body = {
        "/v1/events": [interaction(customer).to_structured()],
        "/v1/customers/{customer_id}/interactions": {"kind": "call", "occurred_at": "2026-11-02T10:00:00+00:00"},
        "/v1/api-keys": {"client": "matrix-test", "scopes": ["interactions:write"]},
        "/v1/profiles/{customer_id}/notes": {"body": "called about a late parcel"},
        "/v1/profiles/{customer_id}": {"city": "Hangzhou"} if method == "PATCH" else None,
        "/v1/profiles/{customer_id}/erasure": {"reason": "matrix test"},
        "/v1/profiles/{customer_id}/merge": {"duplicate_id": "nobody", "identifier": "email", "reason": "matrix"},
        "/v1/profiles/{customer_id}/unmerge": {"duplicate_id": "nobody", "reason": "matrix"},
        "/v1/segments": {"segment_id": f"seg-{uuid.uuid4().hex[:8]}", "name": "x", "rule": {"has_tag": "vip"}},
        "/v1/segments/{segment_id}": {"name": "x", "rule": {"has_tag": "vip"}} if method == "PUT" else None,
        "/v1/loyalty/accounts/{customer_id}/redemptions":
            {"points": 1, "kind": "gift", "gift_sku": "MUG"} if method == "POST" else None,
        "/v1/loyalty/accounts/{customer_id}/adjustments": {"points": 1, "reason": "matrix test"},
        "/v1/loyalty/accounts/{customer_id}/adjustment-requests": {"points": 1, "reason": "matrix test"},
        "/v1/loyalty/adjustment-requests/{request_id}/decision": {"approve": False},
        "/v1/loyalty/accounts/{customer_id}/bonuses": {"points": 1, "reason": "matrix test", "reference": "matrix"},
        "/v1/loyalty/programme": {"config": {}, "note": "matrix test"} if method == "PUT" else None,
        "/v1/loyalty/rewards": {"reward_id": f"matrix-{uuid.uuid4().hex[:8]}", "name": "Mug", "kind": "gift",
                                "points_price": 100} if method == "POST" else None,
        "/v1/loyalty/rewards/{reward_id}": {"name": "Mug", "kind": "gift", "points_price": 100}
        if method == "PUT" else None,
        "/v1/loyalty/accounts/{customer_id}/reward-redemptions": {"reward_id": "matrix-reward"}
        if method == "POST" else None,
        "/v1/loyalty/reward-redemptions/{redemption_id}/fulfilment": {"status": "shipped"},
        "/v1/tickets": {"customer_id": customer, "kind": "enquiry", "channel": "web", "subject": "Where is it?"}
        if method == "POST" else None,
        "/v1/tickets/{ticket_id}": {"priority": "high"} if method == "PATCH" else None,
        "/v1/tickets/{ticket_id}/transitions": {"status": "open"},
        "/v1/tickets/{ticket_id}/assignment": {},
        "/v1/tickets/{ticket_id}/comments": {"body": "hello"} if method == "POST" else None,
        "/v1/tickets/{ticket_id}/attachments": {"filename": "a.jpg", "content_type": "image/jpeg", "size_bytes": 1,
                                                "url": "https://files.example/a.jpg"} if method == "POST" else None,
        "/v1/tickets/{ticket_id}/csat": {"score": 5},
        "/v1/ticketing/groups/{group_id}": {"group_id": "matrix-desk", "name": "Matrix", "skills": ["delivery"]},
        "/v1/ticketing/agents/{agent_id}": {"name": "Agent One", "groups": ["matrix-desk"]},
        "/v1/ticketing/agents/{agent_id}/availability": {"available": True},
        "/v1/ticketing/policy": {"config": {}} if method == "PUT" else None,
        "/v1/kb/articles": {"title": "Late parcels", "body": "Apologise and check the carrier."}
        if method == "POST" else None,
        "/v1/kb/articles/{article_id}": {"title": "x", "body": "y"} if method == "PUT" else None,
        "/v1/loyalty/coupon-pools": {"pool_id": f"pool-{uuid.uuid4().hex[:8]}", "name": "Matrix",
                                     "discount_kind": "percent", "percent": "10"} if method == "POST" else None,
        "/v1/loyalty/coupon-pools/{pool_id}": {"name": "Matrix", "discount_kind": "percent", "percent": "10"}
        if method == "PUT" else None,
        "/v1/loyalty/coupon-pools/{pool_id}/coupons": {"count": 1},
        "/v1/loyalty/coupons/{coupon_id}/revocation": {"reason": "matrix test"},
        "/v1/coupons/validate": {"code": "0000-0000-0000-0000", "customer_id": customer, "currency": "CNY",
                                 "subtotal": "10.00"},
        # Campaigns: the gateway checks who calls, not the body; the campaigns service answers for it.
        "/v1/audiences": {"name": "Matrix", "rule": {"has_tag": "vip"}} if method == "POST" else None,
        "/v1/audiences/{audience_id}": {"name": "Matrix", "rule": {"has_tag": "vip"}} if method == "PUT" else None,
        "/v1/templates": {"name": "Matrix", "channel": "email", "subject": "Hi", "body": "Hello"}
        if method == "POST" else None,
        "/v1/templates/{template_id}": {"name": "Matrix", "channel": "email", "subject": "Hi", "body": "Hello"}
        if method == "PUT" else None,
        "/v1/templates/{template_id}/preview": {},
        "/v1/campaigns": {"name": "Matrix", "audience_id": "matrix-audience", "template_id": "matrix-template"}
        if method == "POST" else None,
        "/v1/campaigns/{campaign_id}": {"name": "Matrix"} if method == "PUT" else None,
        "/v1/public/delivery-status": {"message_id": "m-matrix", "status": "delivered"},
        "/v1/session/dev": {"role": "agent", "name": "matrix.agent"},
    }.get(path)
    headers = {"Idempotency-Key": str(uuid.uuid4())} if method == "POST" else {}
    params = ({"customer_id": customer}
              if path in ("/v1/profiles", "/v1/tickets", "/v1/campaign-contacts") and method == "GET" else None)
    if path == "/v1/ticketing/reports":
        params = {"since": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"}
    return {"method": method, "url": url, "json": body, "headers": headers, "params": params}


def test_the_matrix_covers_every_route_of_the_table():
    assert set(EXPECTED) == {(r.method, r.path) for r in ROUTES}


async def test_authorization_matrix_over_every_route_and_role(broker, gateway_stack, campaigns_stand_in):
    # The campaigns service where it is installed, else a stand-in that records what reaches it.
    stack = gateway_stack(upstreams=UPSTREAMS, **({} if CAMPAIGNS_INSTALLED else campaigns_stand_in.env))
    customer_a = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer_a)])
    async with stack.client(bearer("agent", "agent-1")) as http:
        await wait_until(lambda: _status_is(http, f"/v1/profiles/{customer_a}", 200), what="customer A known")

    outcomes = {}
    async with stack.client() as http:
        for (method, path), allowed in EXPECTED.items():
            for caller in CALLERS:
                spec = request_for(method, path, customer_a)
                spec["headers"].update(caller_headers(caller, customer_a))
                response = await http.request(**spec)
                outcomes[(method, path, caller)] = response
                if allowed is PUBLIC:
                    # Whatever the caller sends, the gateway passes the request on unauthenticated;
                    # the service answers for the bogus token (a stand-in: 200).
                    assert response.status_code < 500, (method, path, caller, response.text)
                    assert "www-authenticate" not in response.headers, (method, path, caller)
                elif caller in allowed:
                    assert response.status_code not in (401, 403), (method, path, caller, response.text)
                    assert response.status_code < 500, (method, path, caller, response.text)
                else:
                    assert response.status_code == 403, (method, path, caller, response.text)
                    assert response.headers["content-type"] == "application/problem+json"
    # Spot checks that "allowed" meant served, not merely "not refused".
    assert outcomes[("GET", "/v1/profiles/{customer_id}", "customer_a")].status_code == 200
    assert outcomes[("GET", "/v1/customers/{customer_id}", "service")].json()["profile"]["status"] == "ok"
    assert outcomes[("POST", "/v1/profiles/{customer_id}/notes", "agent")].status_code == 201
    assert outcomes[("POST", "/v1/customers/{customer_id}/interactions", "agent")].status_code == 202
    assert outcomes[("GET", "/v1/profiles/{customer_id}/orders", "service")].json() == \
        {"items": [], "next_cursor": None}
    # The ticket does not exist: past the gateway, the tickets service answers for itself.
    assert outcomes[("POST", "/v1/tickets/{ticket_id}/csat", "agent")].status_code == 404
    assert outcomes[("POST", "/v1/api-keys", "supervisor")].status_code == 201
    assert outcomes[("POST", "/v1/session/dev", "customer_a")].json()["subject"] == "matrix.agent"
    assert outcomes[("GET", "/v1/session", "marketer")].json()["role"] == "marketer"
    assert outcomes[("GET", "/v1/session", "service_without_scope")].json()["csrf_token"] is None
    assert outcomes[("DELETE", "/v1/session", "agent")].status_code == 204
    assert len(outcomes[("POST", "/v1/events", "service")].json()["accepted"]) == 1
    assert len(outcomes[("POST", "/v1/events", "customer_a")].json()["accepted"]) == 1
    other = outcomes[("POST", "/v1/events", "customer_b")].json()
    assert other["accepted"] == [] and "themselves" in other["rejected"][0]["reason"]
    if not CAMPAIGNS_INSTALLED:
        # What reached the campaigns side: each allowed call once, with its caller's identity, and
        # the public routes with none at all (whatever token the caller sent).
        seen = [(r.method, r.path, r.identity.role if r.identity else None) for r in campaigns_stand_in.received]
        assert ("GET", "/v1/campaigns", Role.MARKETER) in seen and ("GET", "/v1/campaigns", Role.SERVICE) in seen
        assert ("POST", "/v1/campaigns/matrix-campaign/approve", Role.SUPERVISOR) in seen
        assert {role for _, p, role in seen if p.startswith("/v1/public/")} == {None}
        public_routes = sum(1 for (_, p), allowed in EXPECTED.items()
                            if allowed is PUBLIC and p.startswith("/v1/public/"))
        assert len([p for _, p, _ in seen if p.startswith("/v1/public/")]) == public_routes * len(CALLERS)
        assert all(role is not None for _, p, role in seen if not p.startswith("/v1/public/"))
        assert ("GET", "/v1/campaign-contacts", Role.AGENT) in seen
        assert outcomes[("GET", "/v1/customers/{customer_id}", "agent")].json()["campaign_contacts"] == \
            {"status": "ok", "data": {"items": []}, "reason": None}
    # A customer's own 360 does not ask for their campaign contacts (the route is not theirs).
    assert outcomes[("GET", "/v1/customers/{customer_id}", "customer_a")].json()["campaign_contacts"]["status"] \
        == "forbidden"


async def _status_is(http, url: str, status: int) -> bool:
    return (await http.get(url)).status_code == status


def _unsigned(claims: dict) -> str:
    def b64(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def _tampered() -> str:
    header, payload, signature = token("customer", "c-1").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "supervisor"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

REFUSED_TOKENS = {
    "expired": lambda: token("agent", "a-1", ttl_s=-120),
    "wrong audience": lambda: token("agent", "a-1", audience="someone-else"),
    "wrong issuer": lambda: token("agent", "a-1", issuer="https://evil.example"),
    "wrong secret": lambda: token("agent", "a-1", secret="another-secret-that-is-long-enough-0123456789"),
    "unsigned (alg none)": lambda: _unsigned({"sub": "a-1", "role": "supervisor", "iss": "crm-dev", "aud": "crm",
                                              "exp": 4102444800}),
    "RS256 on an HS256 gateway": lambda: jwt.encode({"sub": "a-1", "role": "agent", "iss": "crm-dev", "aud": "crm",
                                                     "exp": 4102444800}, RSA_KEY, algorithm="RS256"),
    "tampered payload": _tampered,
    "unknown role": lambda: jwt.encode({"sub": "a-1", "role": "admin", "iss": "crm-dev", "aud": "crm",
                                        "exp": 4102444800}, TEST_JWT_SECRET, algorithm="HS256"),
    "no expiry": lambda: jwt.encode({"sub": "a-1", "role": "agent", "iss": "crm-dev", "aud": "crm"},
                                    TEST_JWT_SECRET, algorithm="HS256"),
    "not a JWT": lambda: "abc.def",
    # What API keys send is attributed by this prefix (an event's source); no token may claim it.
    "a subject reserved for API keys": lambda: token("service", "apikey:0123456789abcdef",
                                                     scopes=("profiles:read",), client="storefront-tracker"),
}


async def test_bad_tokens_and_missing_credentials_are_refused_with_401(gateway_stack):
    stack = gateway_stack(upstreams=("profile",))
    async with stack.client() as http:
        for name, make in REFUSED_TOKENS.items():
            response = await http.get("/v1/profiles/c-1", headers={"Authorization": f"Bearer {make()}"})
            assert response.status_code == 401, name
            assert response.headers["content-type"] == "application/problem+json", name
            assert response.headers["www-authenticate"].startswith("Bearer"), name
        assert (await http.get("/v1/profiles/c-1")).status_code == 401
        assert (await http.get("/v1/profiles/c-1", headers={"Authorization": "Basic YTpi"})).status_code == 401
        assert (await http.get("/v1/profiles/c-1", headers={"X-API-Key": "crm_not_a_key"})).status_code == 401
        # The same request with a good token goes through (to a 404: nobody is c-1).
        assert (await http.get("/v1/profiles/c-1", headers=bearer("agent", "a-1"))).status_code == 404


async def test_an_api_key_works_within_its_scopes_until_revoked(broker, gateway_stack):
    stack = gateway_stack(upstreams=("profile",))
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    async with stack.client(bearer("supervisor", "sup-1")) as admin:
        created = (await admin.post("/v1/api-keys", json={"client": "erp", "scopes": ["profiles:read"]})).json()
        unknown_scope = await admin.post("/v1/api-keys", json={"client": "erp", "scopes": ["rules:write"]})
        assert unknown_scope.status_code == 422
        listed = (await admin.get("/v1/api-keys")).json()
        assert [k["key_id"] for k in listed] == [created["key_id"]] and "key" not in listed[0]

    key = {"X-API-Key": created["key"]}
    async with stack.client(key) as erp:
        await wait_until(lambda: _status_is(erp, f"/v1/profiles/{customer}", 200), what="read with the key")
        # Outside its scopes: the 360 needs customers:read.
        assert (await erp.get(f"/v1/customers/{customer}")).status_code == 403
        # A key with a wrong secret part is refused, even with a real key id.
        wrong = created["key"][:-2] + ("AA" if not created["key"].endswith("AA") else "BB")
        assert (await erp.get(f"/v1/profiles/{customer}", headers={"X-API-Key": wrong})).status_code == 401

    async with stack.client(bearer("supervisor", "sup-1")) as admin:
        assert (await admin.delete(f"/v1/api-keys/{created['key_id']}")).status_code == 204
        assert (await admin.delete(f"/v1/api-keys/{'0' * 16}")).status_code == 404
        revoked = next(k for k in (await admin.get("/v1/api-keys")).json() if k["key_id"] == created["key_id"])
        assert revoked["revoked_by"] == "sup-1" and revoked["revoked_at"]
    async with stack.client(key) as erp:
        refused = await erp.get(f"/v1/profiles/{customer}")
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    stored = await stack.gateway_database.fetchval("SELECT secret_hash FROM api_keys WHERE key_id = $1",
                                                   created["key_id"])
    assert created["key"].split("_")[2].encode() not in bytes(stored)


# Event type → the callers that may send it through POST /v1/events (issue 17, item 16).
EVENT_TYPES_EXPECTED = {
    "commerce.interaction.recorded": {"customer_a", "tracker"},
    "commerce.order.paid": {"order_system"},
    "commerce.customer.updated": {"account_system"},
}
EVENT_CALLERS = ("customer_a", "tracker", "order_system", "account_system", "agent", "service_without_scope")


def _event_of(event_type: str, customer: str) -> dict:
    if event_type == "commerce.order.paid":
        return order_paid(customer).to_structured()
    if event_type == "commerce.customer.updated":
        return {**customer_registered(customer).to_structured(), "type": event_type}
    return interaction(customer).to_structured()


async def test_each_event_family_needs_its_own_scope_and_a_tracker_key_sends_interactions_only(
        broker, gateway_stack):
    stack = gateway_stack(upstreams=())
    customer = new_customer_id()
    async with stack.client(bearer("supervisor", "sup-1")) as admin:
        # The docs' own example: a storefront tracker's key.
        created = await admin.post("/v1/api-keys", json={"client": "storefront-tracker",
                                                         "scopes": ["interactions:write"]})
        legacy = await admin.post("/v1/api-keys", json={"client": "old", "scopes": ["events:write"]})
    assert created.status_code == 201 and legacy.status_code == 422
    callers = {
        "customer_a": bearer("customer", customer),
        "tracker": {"X-API-Key": created.json()["key"]},
        "order_system": bearer("service", "oms", scopes=("orders:write",)),
        "account_system": bearer("service", "accounts", scopes=("customers:write",)),
        "agent": bearer("agent", "agent-1"),
        "service_without_scope": bearer("service", "erp-readonly", scopes=("profiles:read", "churn:read")),
    }
    sent: dict[str, list[str]] = {t: [] for t in EVENT_TYPES_EXPECTED}
    async with stack.client() as http:
        for event_type, allowed in EVENT_TYPES_EXPECTED.items():
            for caller in EVENT_CALLERS:
                event = _event_of(event_type, customer)
                response = await http.post("/v1/events", json=[event], headers=callers[caller])
                if caller in ("agent", "service_without_scope"):
                    assert response.status_code == 403, (event_type, caller, response.text)
                    assert response.headers["content-type"] == "application/problem+json"
                    continue
                assert response.status_code == 202, (event_type, caller, response.text)
                result = response.json()
                if caller in allowed:
                    assert result == {"accepted": [event["id"]], "rejected": []}, (event_type, caller)
                    sent[event_type].append(event["id"])
                else:
                    assert result["accepted"] == [], (event_type, caller)
                    reason = result["rejected"][0]["reason"]
                    assert "scope" in reason or "a customer may not send" in reason, (event_type, caller, reason)
    # Exactly the allowed events reached Kafka: no faked order, no rewritten contact data.
    orders = await broker.events_published_by(stack.gateway_database, TOPIC_ORDERS)
    rest = [from_kafka(r.value, r.headers) for r in await broker.read_to_end([TOPIC_CUSTOMERS, TOPIC_INTERACTIONS])]
    assert [e.id for e in orders] == sent["commerce.order.paid"]
    assert [e.id for e in rest if e.type == "commerce.customer.updated"] == sent["commerce.customer.updated"]
    assert sorted(e.id for e in rest if e.type == "commerce.interaction.recorded") == \
        sorted(sent["commerce.interaction.recorded"])
    assert {e.source for e in [*orders, *rest]} == {
        f"/crm/gateway/customers/{customer}", "/crm/gateway/api-clients/storefront-tracker",
        "/crm/gateway/service/oms", "/crm/gateway/service/accounts"}


@pytest.fixture
async def identity_provider():
    """The production identity provider's JWKS endpoint: outside the system, so a small fake."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = {"keys": [
        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key())), "kid": "rsa-1", "use": "sig",
         "alg": "RS256"},
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec-1", "use": "sig",
         "alg": "ES256"},
    ]}
    async def serve_jwks(_request: web.Request) -> web.Response:
        return web.json_response(jwks)

    app = web.Application()
    app.router.add_get("/jwks.json", serve_jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield {"url": f"http://127.0.0.1:{port}/jwks.json", "ec_key": ec_key}
    await runner.cleanup()


async def test_production_tokens_verify_against_the_jwks_and_algorithm_confusion_fails(
        broker, gateway_stack, identity_provider):
    stack = gateway_stack(upstreams=("profile",), JWT_JWKS_URL=identity_provider["url"],
                          JWT_ISSUER="https://idp.example", JWT_AUDIENCE="crm-api")
    claims = {"sub": "agent-7", "role": "agent", "iss": "https://idp.example", "aud": "crm-api", "exp": 4102444800}
    rs256 = jwt.encode(claims, RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    es256 = jwt.encode(claims, identity_provider["ec_key"], algorithm="ES256", headers={"kid": "ec-1"})
    public_pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    # The classic confusion attack: HMAC "signed" with the public key, hoping it is used as a secret.
    confused = _hmac_with(public_pem, claims, kid="rsa-1")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    impostor = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "rsa-1"})
    unknown_kid = jwt.encode(claims, RSA_KEY, algorithm="RS256", headers={"kid": "rsa-9"})
    dev_token = token("agent", "agent-7", issuer="https://idp.example", audience="crm-api")
    async with stack.client() as http:
        for good in (rs256, es256):
            assert (await http.get("/v1/profiles/c-1", headers={"Authorization": f"Bearer {good}"})).status_code == 404
        for bad in (confused, impostor, unknown_kid, dev_token):
            assert (await http.get("/v1/profiles/c-1", headers={"Authorization": f"Bearer {bad}"})).status_code == 401


def _hmac_with(secret: bytes, claims: dict, kid: str) -> str:
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}." \
                    f"{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


async def test_a_service_reached_directly_needs_the_gateways_forwarded_identity(broker, make_database, start_service):
    service = start_service("profile", make_database("profile"))
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    async with service.client(identity=None) as http:
        bare = await http.get(f"/v1/profiles/{customer}")
        assert bare.status_code == 401 and bare.headers["content-type"] == "application/problem+json"
        user_token = await http.get(f"/v1/profiles/{customer}", headers=bearer("supervisor", "sup-1"))
        assert user_token.status_code == 401  # a user's token is not a forwarded identity
        forged = IdentityCodec("a-secret-the-attacker-picked-0123456789abcdef").encode(
            Identity(subject="x", role=Role.SUPERVISOR), "profile")
        assert (await http.get(f"/v1/profiles/{customer}", headers={"x-crm-identity": forged})).status_code == 401
        # Health and metrics stay open for probes and Prometheus.
        assert (await http.get("/livez")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200
        other = identity_headers(Identity(subject="c-other", role=Role.CUSTOMER, customer_id="c-other"),
                                 service="profile")
        own = identity_headers(Identity(subject=customer, role=Role.CUSTOMER, customer_id=customer), service="profile")
        assert (await http.get(f"/v1/profiles/{customer}", headers=other)).status_code == 403
        await wait_until(lambda: _status_is_with(http, f"/v1/profiles/{customer}", own, 200), what="own profile")
        # Notes are for staff only, even with a valid customer identity.
        assert (await http.get(f"/v1/profiles/{customer}/notes", headers=own)).status_code == 403
    assert TEST_AUTH_SECRET  # the services run with the harness's secret


async def _status_is_with(http, url: str, headers: dict, status: int) -> bool:
    return (await http.get(url, headers=headers)).status_code == status
