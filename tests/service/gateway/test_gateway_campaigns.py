"""The gateway in front of the campaigns service: public routes forwarded without identity and
limited per address, the marketer's identity forwarded, and a campaigns service that is absent."""

from __future__ import annotations

from crm_shared.auth import Role

from tests.service.gateway.conftest import bearer

FROZEN_AT = "2026-03-02T09:00:10.500000+00:00"


async def test_public_routes_reach_the_service_without_identity_or_credentials(gateway_stack, campaigns_stand_in):
    stack = gateway_stack(upstreams=(), **campaigns_stand_in.env)
    async with stack.client() as http:
        anonymous = await http.get("/v1/public/unsubscribe/tok.sig", params={"channel": "email"})
        # A token, even a valid one, is neither checked nor passed on: the link works for anyone.
        with_token = await http.post("/v1/public/unsubscribe/tok.sig", headers={
            **bearer("marketer", "m-1"), "X-API-Key": "crm_x_y", "X-CRM-Identity": "forged"})
        callback = await http.post("/v1/public/delivery-status", content=b'{"message_id":"m-1"}',
                                   headers={"Content-Type": "application/json",
                                            "X-CRM-Signature": "t=1,v1=abc", "Authorization": "Bearer junk"})
        marketer = await http.get("/v1/campaigns", headers=bearer("marketer", "m-1"))
    assert [r.status_code for r in (anonymous, with_token, callback, marketer)] == [200] * 4
    assert anonymous.headers["ratelimit-policy"] == '"address";q=3000;w=60'
    public, campaigns = campaigns_stand_in.received[:3], campaigns_stand_in.received[3]
    assert [(r.method, r.path, r.identity) for r in public] == [
        ("GET", "/v1/public/unsubscribe/tok.sig", None), ("POST", "/v1/public/unsubscribe/tok.sig", None),
        ("POST", "/v1/public/delivery-status", None)]
    assert public[0].query == "channel=email"
    for received in public:
        assert not set(received.headers) & {"authorization", "x-api-key", "x-crm-identity"}, received.headers
        assert received.headers["x-forwarded-for"] == "127.0.0.1" and received.headers["x-request-id"]
    # The provider's signature travels on: the campaigns service verifies it.
    assert public[2].headers["x-crm-signature"] == "t=1,v1=abc"
    assert (campaigns.path, campaigns.identity.role, campaigns.identity.subject) == (
        "/v1/campaigns", Role.MARKETER, "m-1")


async def test_public_traffic_is_limited_per_address(gateway_stack, campaigns_stand_in):
    stack = gateway_stack(upstreams=(), RATE_LIMIT_ADDRESS="3/minute", RATE_LIMIT_FROZEN_AT=FROZEN_AT,
                          **campaigns_stand_in.env)
    async with stack.client() as http:
        answers = [await http.post("/v1/public/delivery-status", json={}) for _ in range(4)]
        # Signed-in callers keep their own budgets.
        served = await http.get("/v1/campaigns", headers=bearer("marketer", "m-1"))
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[3]
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["detail"].startswith("the address rate limit of 3 requests is used up")
    assert limited.headers["retry-after"] == "50" and served.status_code == 200
    assert len(campaigns_stand_in.received) == 4


async def test_without_a_campaigns_service_its_routes_fail_cleanly_and_the_rest_works(gateway_stack):
    stack = gateway_stack(upstreams=("profile",), BREAKER_FAILURE_THRESHOLD="50")
    async with stack.client() as http:
        public = await http.post("/v1/public/delivery-status", json={})
        listed = await http.get("/v1/campaigns", headers=bearer("marketer", "m-1"))
        refused = await http.get("/v1/profiles/c-1", headers=bearer("marketer", "m-1"))
        profile = await http.get("/v1/profiles/c-1", headers=bearer("agent", "a-1"))
        ready = await http.get("/readyz")
        document = (await http.get("/openapi.json")).json()
    for answer in (public, listed):
        assert answer.status_code == 502 and answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["upstream"] == "campaigns"
    assert refused.status_code == 403 and profile.status_code == 404  # nobody is c-1; profile answered
    assert ready.status_code == 200 and ready.json()["checks"]["upstream:campaigns"] == "failed"
    # The document leaves out what nothing would serve, and says which service is missing.
    assert document["info"]["x-crm-missing-upstreams"] == ["loyalty", "tickets", "churn", "campaigns"]
    assert not [p for p in document["paths"] if p.startswith(("/v1/campaign", "/v1/public/", "/v1/audiences"))]
    assert "/v1/profiles/{customer_id}" in document["paths"]


async def test_the_campaigns_operations_are_in_the_merged_document_with_their_roles(gateway_stack,
                                                                                    campaigns_stand_in):
    # The operations come from the campaigns service's own /openapi.json: served here by a web
    # app declaring two of its routes, the real service's document is its own tests' business.
    stack = gateway_stack(upstreams=(), **campaigns_stand_in.env)
    campaigns_stand_in.openapi = {"openapi": "3.1.0", "info": {"title": "campaigns", "version": "1"}, "paths": {
        "/v1/campaigns/{campaign_id}/approve": {"post": {"summary": "Approve", "responses": {"200": {
            "description": "ok"}}}},
        "/v1/public/unsubscribe/{token}": {"post": {"summary": "Unsubscribe", "responses": {"200": {
            "description": "ok"}}}},
        "/v1/not-published": {"get": {"responses": {"200": {"description": "ok"}}}}}}
    async with stack.client() as http:
        document = (await http.get("/openapi.json")).json()
    assert "campaigns" not in document["info"].get("x-crm-missing-upstreams", [])
    approve = document["paths"]["/v1/campaigns/{campaign_id}/approve"]["post"]
    assert approve["x-crm-roles"] == ["supervisor"] and "**Allowed roles:** supervisor." in approve["description"]
    unsubscribe = document["paths"]["/v1/public/unsubscribe/{token}"]["post"]
    assert unsubscribe["security"] == [] and unsubscribe["x-crm-public"] is True
    assert unsubscribe["description"].startswith("**Public:**")
    assert "/v1/not-published" not in document["paths"]  # only what the route table publishes
