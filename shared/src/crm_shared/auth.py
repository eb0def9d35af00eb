"""Who is calling: roles, the identity the gateway forwards, and the checks every service repeats.

The gateway authenticates callers (JWT bearer tokens, API keys) and forwards the result to the
services as a short-lived HS256 JWT in the ``x-crm-identity`` header. Every service verifies it
again (defence in depth): a service port reached directly, without a valid forwarded identity,
answers 401, and each route repeats its own role and customer checks.

Each forwarded identity is for one service: its audience is ``crm-<service>`` and it is signed with
that service's own key, derived from the gateway's ``AUTH_SECRET`` (HKDF-SHA256, see
:func:`identity_key`). A service holds only its key (``IDENTITY_KEY``), so a compromised service
can forge identities for itself, which it already controls, and for no other; a token it receives
is refused by every other service (wrong audience, wrong key). It lives a minute: replaying one
captured on the internal network works only at that service and only within that minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_shared.problems import PROBLEM_BASE, Problem, problem_response

IDENTITY_HEADER = "x-crm-identity"
INTERNAL_ISSUER = "crm-gateway"
# Forwarded identities live for a minute: enough for one request and its retries, too short to
# be worth stealing from a log or a packet capture.
INTERNAL_TTL_S = 60
# What a service accepts at most: benchmarks sign for longer runs; nothing signs for a day.
MAX_INTERNAL_TTL_S = 2 * 3600


class Role(StrEnum):
    CUSTOMER = "customer"      # a shopper: only their own customer id
    AGENT = "agent"            # call-centre agent: any customer, works tickets, small adjustments
    SUPERVISOR = "supervisor"  # rules, reports, audit log, model refit, API keys
    SERVICE = "service"        # server-to-server integration, limited by scopes
    MARKETER = "marketer"      # audiences, templates, campaigns; no customer's data, no PII


# The roles of the routes open to "everyone": a customer (their own data), the call centre and
# integrations. Written out rather than frozenset(Role): a marketer manages campaigns and must not
# inherit every route that was open to all roles (profiles, loyalty accounts, tickets), nor see
# PII; a role added later is let in route by route, never by default.
ALL_ROLES = frozenset({Role.CUSTOMER, Role.AGENT, Role.SUPERVISOR, Role.SERVICE})
STAFF = frozenset({Role.AGENT, Role.SUPERVISOR})  # the shop's people
SUPERVISOR = frozenset({Role.SUPERVISOR})
MARKETING = frozenset({Role.MARKETER, Role.SUPERVISOR})  # who runs campaigns (supervisors also approve them)


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str                       # user id, agent id, or "apikey:<key id>"
    role: Role
    customer_id: str | None = None     # for customers: the one customer they may touch
    scopes: frozenset[str] = field(default_factory=frozenset)  # what a service caller may do
    client: str | None = None          # the calling application (API key's client, token's azp)

    def may_access_customer(self, customer_id: str) -> bool:
        return self.role is not Role.CUSTOMER or self.customer_id == customer_id

    def authorize(self, roles: frozenset[Role] | set[Role], *, scope: str | None = None,
                  customer_id: str | None = None) -> None:
        """Raise 403 unless this identity has one of ``roles`` (and ``scope`` if a service) and
        may touch ``customer_id``."""
        if self.role not in roles:
            raise Forbidden(f"the {self.role} role may not do this")
        if self.role is Role.SERVICE and scope is not None and scope not in self.scopes:
            raise Forbidden(f"this client lacks the {scope!r} scope")
        if customer_id is not None and not self.may_access_customer(customer_id):
            raise Forbidden("a customer may only touch their own data")

    def claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = {"sub": self.subject, "role": str(self.role)}
        if self.customer_id is not None:
            claims["customer_id"] = self.customer_id
        if self.scopes:
            claims["scope"] = " ".join(sorted(self.scopes))
        if self.client is not None:
            claims["azp"] = self.client
        return claims

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Identity:
        """Build an identity from verified claims; raises ``Unauthenticated`` when they make no sense."""
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("the token has no subject")
        try:
            role = Role(claims.get("role"))
        except ValueError:
            raise Unauthenticated("the token has no known role") from None
        customer_id = claims.get("customer_id")
        if role is Role.CUSTOMER:
            customer_id = customer_id or subject  # a customer's subject is their customer id
        elif customer_id is not None:
            raise Unauthenticated("only customer tokens carry a customer id")
        scope = claims.get("scope", "")
        if not isinstance(scope, str) or not isinstance(customer_id, str | None):
            raise Unauthenticated("malformed claims")
        client = claims.get("azp")
        return cls(subject=subject, role=role, customer_id=customer_id,
                   scopes=frozenset(scope.split()), client=client if isinstance(client, str) else None)


class Unauthenticated(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(401, "Unauthorized", detail, type_=PROBLEM_BASE + "unauthenticated")


class Forbidden(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(403, "Forbidden", detail, type_=PROBLEM_BASE + "forbidden")


def identity_audience(service: str) -> str:
    return f"crm-{service}"


def identity_key(auth_secret: str, service: str) -> str:
    """The key ``service`` verifies its forwarded identities with (``crm identity-key <service>``).

    Derived from the gateway's secret so the gateway needs one secret, and one-way, so no service
    key reveals the secret or another service's key.
    """
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"crm forwarded identity v1 " + identity_audience(service).encode())
    return hkdf.derive(auth_secret.encode()).hex()


class IdentityCodec:
    """Signs the forwarded identity for one service at a time (the gateway)."""

    def __init__(self, auth_secret: str, *, ttl_s: int = INTERNAL_TTL_S) -> None:
        self._auth_secret = auth_secret
        self._ttl_s = ttl_s
        self._keys: dict[str, str] = {}
        # The gateway forwards the same few identities over and over; re-signing each time
        # would cost a signature per request. A token is reused until half its life is gone.
        self._signed: dict[tuple[Identity, str], tuple[str, float]] = {}

    def key_for(self, service: str) -> str:
        key = self._keys.get(service)
        if key is None:
            key = self._keys[service] = identity_key(self._auth_secret, service)
        return key

    def encode(self, identity: Identity, service: str) -> str:
        now = time.time()
        cached = self._signed.get((identity, service))
        if cached is not None and cached[1] > now:
            return cached[0]
        token = jwt.encode({**identity.claims(), "iss": INTERNAL_ISSUER, "aud": identity_audience(service),
                            "iat": int(now), "exp": int(now) + self._ttl_s}, self.key_for(service),
                           algorithm="HS256")
        if len(self._signed) > 10_000:
            self._signed.clear()
        self._signed[(identity, service)] = (token, now + self._ttl_s / 2)
        return token


class IdentityVerifier:
    """Verifies the identities forwarded to one service, with that service's key only."""

    def __init__(self, key: str, service: str) -> None:
        self._key = key
        self._audience = identity_audience(service)
        # The services see the same forwarded token many times (the gateway reuses it), and a
        # signature check is not free: verified tokens are kept until they expire.
        self._verified: dict[str, tuple[Identity, float]] = {}

    def decode(self, token: str) -> Identity:
        cached = self._verified.get(token)
        if cached is not None:
            if cached[1] > time.time():
                return cached[0]
            del self._verified[token]
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"], audience=self._audience,
                                issuer=INTERNAL_ISSUER, leeway=5,
                                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the forwarded identity is not valid: {exc}") from None
        if claims["exp"] - claims["iat"] > MAX_INTERNAL_TTL_S:
            raise Unauthenticated("the forwarded identity lives too long")
        identity = Identity.from_claims(claims)
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[token] = (identity, float(claims["exp"]))
        return identity


class RequireIdentity:
    """ASGI middleware of every service except the gateway: ``/v1/…`` needs a forwarded identity.

    Health, metrics and the OpenAPI document stay open: probes and Prometheus need them, and
    they hold no customer data. Paths under ``open_prefixes`` (e.g. ``("/v1/public/",)``) pass
    without an identity too: the gateway forwards its public routes (unsubscribe links, delivery
    callbacks) with none, and the service authenticates those requests itself (signed tokens).
    """

    def __init__(self, app: ASGIApp, verifier: IdentityVerifier, open_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.verifier = verifier
        if any(not p.startswith("/v1/") or not p.endswith("/") for p in open_prefixes):
            # "/v1/public" would also open "/v1/publicity/…"; a prefix outside /v1/ is open anyway.
            raise ValueError("open prefixes are /v1/… paths ending with '/'")
        self.open_prefixes = open_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        if self.open_prefixes and scope["path"].startswith(self.open_prefixes):
            await self.app(scope, receive, send)  # no identity on the request: routes there need none
            return
        token = next((v for k, v in scope["headers"] if k == IDENTITY_HEADER.encode()), None)
        try:
            if token is None:
                raise Unauthenticated("this service is reached through the gateway; no forwarded identity")
            identity = self.verifier.decode(token.decode("latin-1"))
        except Unauthenticated as exc:
            response = problem_response(401, exc.title, exc.detail, type_=exc.type, instance=scope["path"])
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["identity"] = identity
        await self.app(scope, receive, send)


async def current_identity(request: Request) -> Identity:
    # async on purpose: FastAPI runs a plain-def dependency in a worker thread, a thread hop per request.
    identity = getattr(request.state, "identity", None)
    if identity is None:  # a route outside /v1/ asked for one: a programming error, not the caller's
        raise Unauthenticated("no identity on this request")
    return identity


CurrentIdentity = Annotated[Identity, Depends(current_identity)]


def mint_user_token(*, secret: str, issuer: str, audience: str, role: Role | str, subject: str,
                    customer_id: str | None = None, scopes: tuple[str, ...] = (), client: str | None = None,
                    ttl_s: int = 3600, algorithm: str = "HS256") -> str:
    """A bearer token as an identity provider would issue it (dev and tests: ``crm token``)."""
    now = int(time.time())
    identity = Identity(subject=subject, role=Role(role), customer_id=customer_id,
                        scopes=frozenset(scopes), client=client)
    claims = {**identity.claims(), "iss": issuer, "aud": audience, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, secret, algorithm=algorithm)
