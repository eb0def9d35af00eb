"""The public API's route table: every route, where it goes, and who may call it.

One table is the whole access policy of the gateway: a request that matches no row is a 404,
and each row names the roles allowed, the scope a service caller needs, and whether the path
names a customer (then a customer may only use their own id). The services repeat these checks
on the identity the gateway forwards. A ``public`` row is the exception: nobody is authenticated
and no identity is forwarded; the service behind it checks what the request carries (a signed
token or body). The gateway's own public rows are the sign-in routes under ``/v1/session``, which
exist to hand out a credential. Pure data and matching; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from crm_shared.auth import ALL_ROLES, MARKETING, STAFF, SUPERVISOR, Role

from crm_gateway.domain.ingest import EVENT_SCOPES

STAFF_AND_SERVICE = frozenset({Role.AGENT, Role.SUPERVISOR, Role.SERVICE})
# Campaigns are run by marketers and supervisors, and by integrations with the campaigns scopes.
MARKETING_AND_SERVICE = MARKETING | {Role.SERVICE}
# Segment definitions, their sizes and the RFM grid are aggregates (counts and sums, no customer id,
# no PII): marketers read them to plan audiences. A segment's members list customers: staff only.
SEGMENT_AGGREGATES = STAFF | {Role.MARKETER}
NOBODY: frozenset[Role] = frozenset()  # the roles of a public route: none is asked for
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Every role, written out: the console's session is for anyone signed in, whatever their role.
SIGNED_IN = ALL_ROLES | {Role.MARKETER}
PUBLIC_UPSTREAM_PREFIX = "/v1/public/"
SESSION_PATH = "/v1/session"  # the gateway's sign-in routes: this path and what is under it


@dataclass(frozen=True)
class Route:
    method: str
    path: str                      # template, as in the OpenAPI document: /v1/profiles/{customer_id}
    roles: frozenset[Role]
    upstream: str | None = None    # service that answers; None: the gateway itself
    scope: str | None = None       # needed by service callers (API keys, service tokens)
    customer_param: str | None = None  # path parameter holding the customer id, if any
    timeout_s: float | None = None     # whole-request budget; None: the gateway default
    # No authentication at the gateway and no identity forwarded (rate-limited per address): for
    # links in messages and providers' callbacks, which the service verifies by their signature.
    public: bool = False
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.public and not _may_be_public(self):
            # A public row that named roles would read as a check nobody makes; one outside
            # /v1/public/ would reach a service prefix that demands the forwarded identity; a
            # gateway route without identity is only a sign-in route, which hands out credentials.
            raise ValueError(f"a public route is an upstream's /v1/public/… path or a gateway {SESSION_PATH} "
                             f"path, with no roles: {self.path}")
        # A path parameter matches one segment; ids never contain "/".
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path)
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT_METHODS


def is_session_path(path: str) -> bool:
    return path == SESSION_PATH or path.startswith(SESSION_PATH + "/")


def _may_be_public(route: Route) -> bool:
    if route.roles or route.scope or route.customer_param:
        return False
    if route.upstream is None:
        return is_session_path(route.path)
    return route.path.startswith(PUBLIC_UPSTREAM_PREFIX)


def _campaigns(method: str, path: str, roles: frozenset[Role] = MARKETING_AND_SERVICE, *,
               timeout_s: float = 5.0) -> Route:
    # Service callers: campaigns:read to read, campaigns:manage for anything else.
    scope = ("campaigns:read" if method == "GET" else "campaigns:manage") if Role.SERVICE in roles else None
    return Route(method, path, roles, upstream="campaigns", scope=scope, timeout_s=timeout_s)


# Campaigns: marketers and supervisors build audiences, templates and campaigns; only a
# supervisor approves one (the second pair of eyes before customers get a message). Marketers see
# no customer's data: audiences are rules, estimates are counts, messages carry no address.
CAMPAIGN_ROUTES: tuple[Route, ...] = (
    _campaigns("POST", "/v1/audiences"),
    _campaigns("GET", "/v1/audiences", timeout_s=2.0),
    _campaigns("GET", "/v1/audiences/{audience_id}", timeout_s=2.0),
    _campaigns("PUT", "/v1/audiences/{audience_id}"),
    # Counts the audience's members now: a segment query, longer than a read.
    _campaigns("GET", "/v1/audiences/{audience_id}/estimate", timeout_s=30.0),
    _campaigns("POST", "/v1/templates"),
    _campaigns("GET", "/v1/templates", timeout_s=2.0),
    _campaigns("GET", "/v1/templates/{template_id}", timeout_s=2.0),
    _campaigns("PUT", "/v1/templates/{template_id}"),
    _campaigns("POST", "/v1/templates/{template_id}/preview"),
    _campaigns("POST", "/v1/campaigns"),
    _campaigns("GET", "/v1/campaigns", timeout_s=2.0),
    _campaigns("GET", "/v1/campaigns/{campaign_id}", timeout_s=2.0),
    _campaigns("PUT", "/v1/campaigns/{campaign_id}"),
    *(_campaigns("POST", f"/v1/campaigns/{{campaign_id}}/{action}", MARKETING)
      for action in ("activate", "pause", "resume")),
    _campaigns("POST", "/v1/campaigns/{campaign_id}/approve", SUPERVISOR),
    _campaigns("GET", "/v1/campaigns/{campaign_id}/results", MARKETING, timeout_s=10.0),
    _campaigns("GET", "/v1/campaigns/{campaign_id}/messages", MARKETING, timeout_s=5.0),
    # A customer's recent campaign contacts (the 360's part): the call centre sees what the customer
    # was sent; ?customer_id= is in the query, so the service checks it, and customers are not let in.
    Route("GET", "/v1/campaign-contacts", frozenset({Role.AGENT, Role.SUPERVISOR, Role.MARKETER, Role.SERVICE}),
          upstream="campaigns", scope="campaigns:read", timeout_s=2.0),
    # Public: a message's unsubscribe link (GET and POST; what each does is the campaigns service's
    # business) and delivery providers' status callbacks. The token or body is HMAC-signed.
    Route("GET", "/v1/public/unsubscribe/{token}", NOBODY, upstream="campaigns", timeout_s=2.0, public=True),
    Route("POST", "/v1/public/unsubscribe/{token}", NOBODY, upstream="campaigns", timeout_s=5.0, public=True),
    Route("POST", "/v1/public/delivery-status", NOBODY, upstream="campaigns", timeout_s=5.0, public=True),
)

ROUTES: tuple[Route, ...] = (
    # Served by the gateway.
    Route("GET", "/v1/customers/{customer_id}", ALL_ROLES, scope="customers:read", customer_param="customer_id"),
    # Service callers need the scope of each event's family (interactions:write, orders:write,
    # customers:write); the route checks them per event (domain/ingest.py).
    Route("POST", "/v1/events", frozenset({Role.CUSTOMER, Role.SERVICE})),
    # A call or chat the call centre had with the customer, as an interaction (the agent from the token).
    Route("POST", "/v1/customers/{customer_id}/interactions", STAFF, customer_param="customer_id"),
    Route("GET", "/v1/api-keys", SUPERVISOR),
    Route("POST", "/v1/api-keys", SUPERVISOR),
    Route("DELETE", "/v1/api-keys/{key_id}", SUPERVISOR),
    # The console's sign-in (session.py): what the page needs to offer, the dev sign-in (dev and
    # test only), the OIDC round trip, sign-out (public: an expired session must still be able to
    # clear its cookies), and who is signed in.
    *(Route(method, path, NOBODY, public=True) for method, path in (
        ("GET", "/v1/session/config"), ("POST", "/v1/session/dev"), ("GET", "/v1/session/oidc/login"),
        ("GET", "/v1/session/oidc/callback"), ("DELETE", SESSION_PATH))),
    Route("GET", SESSION_PATH, SIGNED_IN),
    # Proxied to the services.
    Route("GET", "/v1/profiles/{customer_id}", ALL_ROLES, upstream="profile", scope="profiles:read",
          customer_param="customer_id", timeout_s=2.0),
    Route("GET", "/v1/profiles", STAFF, upstream="profile", timeout_s=2.0),  # search
    Route("PATCH", "/v1/profiles/{customer_id}", STAFF, upstream="profile", customer_param="customer_id",
          timeout_s=2.0),
    Route("GET", "/v1/audit/pii-access", SUPERVISOR, upstream="profile", timeout_s=2.0),
    # Order history: also for an IVR or another server-side integration (its own scope).
    Route("GET", "/v1/profiles/{customer_id}/orders", ALL_ROLES, upstream="profile", scope="orders:read",
          customer_param="customer_id", timeout_s=2.0),
    Route("GET", "/v1/profiles/{customer_id}/timeline", STAFF, upstream="profile", customer_param="customer_id",
          timeout_s=2.0),
    Route("GET", "/v1/profiles/{customer_id}/export", frozenset({Role.CUSTOMER, Role.SUPERVISOR}),
          upstream="profile", customer_param="customer_id", timeout_s=5.0),
    Route("POST", "/v1/profiles/{customer_id}/erasure", SUPERVISOR, upstream="profile",
          customer_param="customer_id", timeout_s=5.0),
    Route("GET", "/v1/profiles/{customer_id}/duplicates", STAFF, upstream="profile", customer_param="customer_id",
          timeout_s=2.0),
    Route("POST", "/v1/profiles/{customer_id}/merge", SUPERVISOR, upstream="profile", customer_param="customer_id",
          timeout_s=10.0),
    Route("POST", "/v1/profiles/{customer_id}/unmerge", SUPERVISOR, upstream="profile",
          customer_param="customer_id", timeout_s=10.0),
    Route("GET", "/v1/segments", SEGMENT_AGGREGATES, upstream="profile", timeout_s=2.0),
    # A static path: looked up before the /v1/segments/{segment_id} patterns below.
    Route("GET", "/v1/segments/rfm-grid", SEGMENT_AGGREGATES, upstream="profile", timeout_s=5.0),
    Route("POST", "/v1/segments", SUPERVISOR, upstream="profile", timeout_s=30.0),
    Route("POST", "/v1/segments/refresh", SUPERVISOR, upstream="profile", timeout_s=120.0),
    Route("GET", "/v1/segments/{segment_id}", SEGMENT_AGGREGATES, upstream="profile", timeout_s=2.0),
    Route("PUT", "/v1/segments/{segment_id}", SUPERVISOR, upstream="profile", timeout_s=30.0),
    Route("DELETE", "/v1/segments/{segment_id}", SUPERVISOR, upstream="profile", timeout_s=5.0),
    Route("GET", "/v1/segments/{segment_id}/members", STAFF, upstream="profile", timeout_s=5.0),
    Route("GET", "/v1/profiles/{customer_id}/notes", STAFF, upstream="profile", customer_param="customer_id",
          timeout_s=2.0),
    Route("POST", "/v1/profiles/{customer_id}/notes", STAFF, upstream="profile", customer_param="customer_id",
          timeout_s=2.0),
    # Loyalty: members see their own account; redemptions by the member, the call centre or the shop.
    *(Route("GET", f"/v1/loyalty/accounts/{{customer_id}}{sub}", ALL_ROLES, upstream="loyalty",
            scope="loyalty:read", customer_param="customer_id", timeout_s=2.0)
      for sub in ("", "/ledger", "/balance", "/expiries", "/redemptions")),
    Route("POST", "/v1/loyalty/accounts/{customer_id}/redemptions", ALL_ROLES, upstream="loyalty",
          scope="loyalty:redeem", customer_param="customer_id", timeout_s=5.0),
    Route("POST", "/v1/loyalty/accounts/{customer_id}/adjustments", STAFF, upstream="loyalty",
          customer_param="customer_id", timeout_s=5.0),
    # Above an agent's limit: the agent asks, a supervisor approves (the adjustment is made) or rejects.
    Route("POST", "/v1/loyalty/accounts/{customer_id}/adjustment-requests", STAFF, upstream="loyalty",
          customer_param="customer_id", timeout_s=5.0),
    Route("GET", "/v1/loyalty/adjustment-requests", SUPERVISOR, upstream="loyalty", timeout_s=2.0),
    Route("GET", "/v1/loyalty/adjustment-requests/{request_id}", STAFF, upstream="loyalty", timeout_s=2.0),
    Route("POST", "/v1/loyalty/adjustment-requests/{request_id}/decision", SUPERVISOR, upstream="loyalty",
          timeout_s=5.0),
    # Bonus points a campaign grants (once per member and reference): the campaigns service's credential.
    Route("POST", "/v1/loyalty/accounts/{customer_id}/bonuses", frozenset({Role.SUPERVISOR, Role.SERVICE}),
          upstream="loyalty", scope="loyalty:bonus", customer_param="customer_id", timeout_s=5.0),
    Route("GET", "/v1/loyalty/programme", ALL_ROLES, upstream="loyalty", scope="loyalty:read", timeout_s=2.0),
    Route("GET", "/v1/loyalty/programme/versions", SUPERVISOR, upstream="loyalty", timeout_s=2.0),
    Route("PUT", "/v1/loyalty/programme", SUPERVISOR, upstream="loyalty", timeout_s=5.0),
    Route("POST", "/v1/loyalty/jobs/{job}", SUPERVISOR, upstream="loyalty", timeout_s=120.0),
    Route("GET", "/v1/loyalty/reports/liability", SUPERVISOR, upstream="loyalty", timeout_s=30.0),
    # Loyalty earning rules: the referrals a member made (own, staff, service).
    Route("GET", "/v1/loyalty/accounts/{customer_id}/referrals", ALL_ROLES, upstream="loyalty",
          scope="loyalty:read", customer_param="customer_id", timeout_s=2.0),
    # The reward catalogue: everyone reads it (a customer may ask about their own eligibility only:
    # the service checks ?customer_id=), supervisors keep it; fulfilment by supervisors and by
    # fulfilment systems (loyalty:fulfil).
    Route("GET", "/v1/loyalty/rewards", ALL_ROLES, upstream="loyalty", scope="loyalty:read", timeout_s=2.0),
    Route("GET", "/v1/loyalty/rewards/{reward_id}", ALL_ROLES, upstream="loyalty", scope="loyalty:read",
          timeout_s=2.0),
    Route("POST", "/v1/loyalty/rewards", SUPERVISOR, upstream="loyalty", timeout_s=5.0),
    Route("PUT", "/v1/loyalty/rewards/{reward_id}", SUPERVISOR, upstream="loyalty", timeout_s=5.0),
    Route("GET", "/v1/loyalty/accounts/{customer_id}/reward-redemptions", ALL_ROLES, upstream="loyalty",
          scope="loyalty:read", customer_param="customer_id", timeout_s=2.0),
    Route("POST", "/v1/loyalty/accounts/{customer_id}/reward-redemptions", ALL_ROLES, upstream="loyalty",
          scope="loyalty:redeem", customer_param="customer_id", timeout_s=5.0),
    Route("GET", "/v1/loyalty/reward-redemptions/{redemption_id}", STAFF_AND_SERVICE, upstream="loyalty",
          scope="loyalty:read", timeout_s=2.0),
    Route("POST", "/v1/loyalty/reward-redemptions/{redemption_id}/fulfilment",
          frozenset({Role.SUPERVISOR, Role.SERVICE}), upstream="loyalty", scope="loyalty:fulfil", timeout_s=5.0),
    # Coupons: supervisors own pools and revocations; a supervisor or an integration (coupons:issue)
    # issues codes; staff read a coupon's uses; a member reads their codes; the storefront
    # (coupons:validate), the customer (for themselves, checked by the service: the path names
    # nobody) and staff validate a code for a cart. Codes travel in bodies only.
    Route("POST", "/v1/loyalty/coupon-pools", SUPERVISOR, upstream="loyalty", timeout_s=5.0),
    Route("GET", "/v1/loyalty/coupon-pools", STAFF, upstream="loyalty", timeout_s=2.0),
    Route("GET", "/v1/loyalty/coupon-pools/{pool_id}", STAFF, upstream="loyalty", timeout_s=2.0),
    Route("PUT", "/v1/loyalty/coupon-pools/{pool_id}", SUPERVISOR, upstream="loyalty", timeout_s=5.0),
    Route("POST", "/v1/loyalty/coupon-pools/{pool_id}/coupons", frozenset({Role.SUPERVISOR, Role.SERVICE}),
          upstream="loyalty", scope="coupons:issue", timeout_s=30.0),
    Route("GET", "/v1/loyalty/coupons/{coupon_id}", STAFF, upstream="loyalty", timeout_s=2.0),
    Route("POST", "/v1/loyalty/coupons/{coupon_id}/revocation", SUPERVISOR, upstream="loyalty", timeout_s=5.0),
    Route("GET", "/v1/loyalty/accounts/{customer_id}/coupons", ALL_ROLES, upstream="loyalty", scope="loyalty:read",
          customer_param="customer_id", timeout_s=2.0),
    Route("POST", "/v1/coupons/validate", ALL_ROLES, upstream="loyalty", scope="coupons:validate", timeout_s=2.0),
    # Tickets: customers open and follow their own (the service checks the ticket's owner: a
    # ticket id names no customer), agents work them, supervisors own queues, policy and reports.
    Route("POST", "/v1/tickets", ALL_ROLES, upstream="tickets", scope="tickets:write", timeout_s=5.0),
    Route("GET", "/v1/tickets", ALL_ROLES, upstream="tickets", scope="tickets:read", timeout_s=2.0),
    Route("GET", "/v1/tickets/{ticket_id}", ALL_ROLES, upstream="tickets", scope="tickets:read", timeout_s=2.0),
    Route("PATCH", "/v1/tickets/{ticket_id}", STAFF, upstream="tickets", timeout_s=5.0),
    Route("POST", "/v1/tickets/{ticket_id}/transitions", STAFF, upstream="tickets", timeout_s=5.0),
    Route("POST", "/v1/tickets/{ticket_id}/assignment", STAFF, upstream="tickets", timeout_s=5.0),
    Route("GET", "/v1/tickets/{ticket_id}/history", STAFF, upstream="tickets", timeout_s=2.0),
    Route("GET", "/v1/tickets/{ticket_id}/comments", frozenset({Role.CUSTOMER, *STAFF}), upstream="tickets",
          timeout_s=2.0),
    Route("POST", "/v1/tickets/{ticket_id}/comments", frozenset({Role.CUSTOMER, *STAFF}), upstream="tickets",
          timeout_s=5.0),
    Route("GET", "/v1/tickets/{ticket_id}/attachments", frozenset({Role.CUSTOMER, *STAFF}), upstream="tickets",
          timeout_s=2.0),
    Route("POST", "/v1/tickets/{ticket_id}/attachments", frozenset({Role.CUSTOMER, *STAFF}), upstream="tickets",
          timeout_s=5.0),
    # The customer's own rating, or the answer they gave on the phone, recorded (and marked) by staff.
    Route("POST", "/v1/tickets/{ticket_id}/csat", frozenset({Role.CUSTOMER, *STAFF}), upstream="tickets",
          timeout_s=5.0),
    Route("GET", "/v1/ticketing/groups", STAFF, upstream="tickets", timeout_s=2.0),
    Route("PUT", "/v1/ticketing/groups/{group_id}", SUPERVISOR, upstream="tickets", timeout_s=5.0),
    Route("GET", "/v1/ticketing/agents", STAFF, upstream="tickets", timeout_s=2.0),
    Route("PUT", "/v1/ticketing/agents/{agent_id}", SUPERVISOR, upstream="tickets", timeout_s=5.0),
    Route("PUT", "/v1/ticketing/agents/{agent_id}/availability", STAFF, upstream="tickets", timeout_s=5.0),
    Route("GET", "/v1/ticketing/policy", STAFF, upstream="tickets", timeout_s=2.0),
    Route("PUT", "/v1/ticketing/policy", SUPERVISOR, upstream="tickets", timeout_s=5.0),
    Route("GET", "/v1/ticketing/reports", SUPERVISOR, upstream="tickets", timeout_s=30.0),
    Route("POST", "/v1/ticketing/sla-scan", SUPERVISOR, upstream="tickets", timeout_s=120.0),
    Route("GET", "/v1/kb/articles", STAFF, upstream="tickets", timeout_s=2.0),
    Route("POST", "/v1/kb/articles", SUPERVISOR, upstream="tickets", timeout_s=5.0),
    Route("GET", "/v1/kb/articles/{article_id}", STAFF, upstream="tickets", timeout_s=2.0),
    Route("PUT", "/v1/kb/articles/{article_id}", SUPERVISOR, upstream="tickets", timeout_s=5.0),
    # Churn risk is the shop's view of a customer, not the customer's: staff and integrations only.
    Route("GET", "/v1/churn/customers/{customer_id}", STAFF_AND_SERVICE, upstream="churn", scope="churn:read",
          timeout_s=2.0),
    Route("GET", "/v1/churn/customers", STAFF_AND_SERVICE, upstream="churn", scope="churn:read", timeout_s=5.0),
    Route("GET", "/v1/churn/model", STAFF_AND_SERVICE, upstream="churn", scope="churn:read", timeout_s=2.0),
    # How risk is spread (counts and value per level, score bins): aggregates naming no customer,
    # so marketers read them too, to size their win-back campaigns.
    Route("GET", "/v1/churn/distribution", STAFF_AND_SERVICE | {Role.MARKETER}, upstream="churn",
          scope="churn:read", timeout_s=5.0),
    # Fits the model and rescores every customer before answering: long on a large base
    # (bench/churn.py, docs/benchmarks.md), hence its own timeout.
    Route("POST", "/v1/churn/model/refit", SUPERVISOR, upstream="churn", timeout_s=600.0),
    *CAMPAIGN_ROUTES,
)

# Permissions a service checks itself rather than the route table: pii:read lets agents and
# integrations reveal e-mail, phone, name and address (audited by the profile service).
SERVICE_CHECKED_SCOPES = frozenset({"pii:read"})
# Every scope a caller can hold: those the route table asks for, the ones above, and the
# per-family scopes of POST /v1/events.
SCOPES = frozenset(r.scope for r in ROUTES if r.scope) | SERVICE_CHECKED_SCOPES | frozenset(EVENT_SCOPES.values())


@dataclass(frozen=True)
class Match:
    route: Route | None
    params: dict[str, str]
    allowed_methods: tuple[str, ...] = ()  # set when the path exists but not with this method


class RouteTable:
    def __init__(self, routes: tuple[Route, ...] = ROUTES) -> None:
        self.routes = routes
        # Exact paths (no parameters) are a dict lookup; the rest are tried in order.
        self._static = {(r.method, r.path): r for r in routes if "{" not in r.path}
        self._dynamic = [r for r in routes if "{" in r.path]

    def match(self, method: str, path: str) -> Match:
        route = self._static.get((method, path))
        if route is not None:
            return Match(route, {})
        for route in self._dynamic:
            if route.method == method:
                found = route.pattern.match(path)
                if found:
                    return Match(route, found.groupdict())
        allowed = tuple(sorted({r.method for r in self.routes if r.pattern.match(path)}))
        return Match(None, {}, allowed)
