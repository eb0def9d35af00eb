"""Authentication: who is calling. Bearer JWTs (HS256 in dev, JWKS in production), API keys, and
the console's session cookie (a bearer JWT kept by the browser, with a CSRF check on writes)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

import aiohttp
import jwt
from crm_shared.auth import Identity, Role, Unauthenticated
from crm_shared.logging import get_logger
from crm_shared.problems import PROBLEM_BASE, Problem
from crm_shared.uow import unit_of_work
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_gateway.domain import api_keys
from crm_gateway.repository import ActiveKey, GatewayRepository
from crm_gateway.settings import GatewaySettings

log = get_logger(__name__)

API_KEY_HEADER = b"x-api-key"
CSRF_HEADER = b"x-csrf-token"
SESSION_COOKIE = "crm_session"
CSRF_COOKIE = "crm_csrf"
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_TOKEN_CACHE_MAX = 50_000


class TokenVerifier:
    """Verifies bearer JWTs: signature, ``exp``, ``iss``, ``aud``, and an allowed algorithm.

    The algorithm list is fixed by configuration, never taken from the token: ``alg=none`` and
    HS256 tokens against an RS256 deployment (algorithm confusion) fail before any key is used.
    """

    def __init__(self, settings: GatewaySettings, session: aiohttp.ClientSession) -> None:
        self._algorithms = settings.verification_algorithms
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_s
        self._secret = settings.jwt_secret.get_secret_value()
        self._jwks = JwksKeys(settings.jwt_jwks_url, session, settings.jwks_cache_s) if settings.jwt_jwks_url else None
        # Verified tokens by their text: a busy client sends the same token for an hour, and
        # checking a signature costs more than the rest of the request path. Expiry is still
        # checked on every use.
        self._verified: dict[str, tuple[Identity, float]] = {}

    async def verify(self, token: str) -> Identity:
        return (await self.verify_with_expiry(token))[0]

    async def verify_with_expiry(self, token: str) -> tuple[Identity, float]:
        """The token's identity and its ``exp`` (seconds since the epoch)."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached[1] > time.time() - self._leeway:
                return cached
            del self._verified[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise Unauthenticated(f"tokens signed with {algorithm!r} are not accepted")
        key = self._secret if self._jwks is None else await self._jwks.key(header.get("kid"), algorithm)
        try:
            claims = jwt.decode(token, key, algorithms=self._algorithms, audience=self._audience,
                                issuer=self._issuer, leeway=self._leeway,
                                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the bearer token is not valid: {exc}") from None
        identity = Identity.from_claims(claims)
        if identity.subject.startswith(api_keys.SUBJECT_PREFIX):
            # Reserved: what API keys send is attributed by that prefix (events' source, limits).
            raise Unauthenticated(f"token subjects may not start with {api_keys.SUBJECT_PREFIX!r}")
        if len(self._verified) >= _TOKEN_CACHE_MAX:
            self._verified.clear()
        self._verified[token] = verified = (identity, float(claims["exp"]))
        return verified


class JwksKeys:
    """Signing keys from the identity provider's JWKS URL, cached, refreshed on an unknown ``kid``."""

    # An unknown kid triggers at most one refresh per this many seconds, so a flood of forged
    # tokens cannot turn into a flood of requests to the identity provider.
    REFRESH_MIN_INTERVAL_S = 30.0

    def __init__(self, url: str, session: aiohttp.ClientSession, cache_s: float) -> None:
        self._url = url
        self._session = session
        self._cache_s = cache_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        now = time.monotonic()
        stale = now - self._fetched_at > self._cache_s
        unknown = kid not in self._keys and now - self._fetched_at > self.REFRESH_MIN_INTERVAL_S
        if stale or unknown:
            await self._refresh()
        key = self._keys.get(kid or "")
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))  # a provider with a single key may omit kid
        if key is None:
            raise Unauthenticated("the token's signing key is unknown")
        if key.algorithm_name != algorithm:
            raise Unauthenticated("the token's algorithm does not match its key")
        return key

    async def _refresh(self) -> None:
        async with self._lock:
            try:
                async with self._session.get(self._url, timeout=aiohttp.ClientTimeout(total=3)) as response:
                    response.raise_for_status()
                    document = await response.json(content_type=None)
                keys = jwt.PyJWKSet.from_dict(document).keys
            except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWTError) as exc:
                log.warning("JWKS fetch failed", url=self._url, error=str(exc))
                if not self._keys:
                    raise Problem(503, "Service Unavailable", "token keys cannot be fetched right now") from None
                return  # keep serving with the keys we have
            self._keys = {k.key_id or "": k for k in keys}
            self._fetched_at = time.monotonic()


class ApiKeyStore:
    """API keys from the gateway database (through its repository), cached briefly; a revocation
    in this gateway evicts at once (:meth:`evict`), the others within the cache time."""

    def __init__(self, engine: AsyncEngine, cache_s: float) -> None:
        self._engine = engine
        self._cache_s = cache_s
        self._cache: dict[str, tuple[ActiveKey | None, float]] = {}

    async def verify(self, key: str) -> Identity:
        parsed = api_keys.parse(key)
        if parsed is None:
            raise Unauthenticated("the API key is malformed")
        key_id, secret = parsed
        record = await self._lookup(key_id)
        if record is None or not api_keys.secret_matches(secret, record.secret_hash):
            raise Unauthenticated("the API key is unknown or revoked")
        return Identity(subject=f"{api_keys.SUBJECT_PREFIX}{key_id}", role=Role.SERVICE,
                        scopes=frozenset(record.scopes), client=record.client)

    def evict(self, key_id: str) -> None:
        self._cache.pop(key_id, None)

    async def _lookup(self, key_id: str) -> ActiveKey | None:
        cached = self._cache.get(key_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        async with unit_of_work(self._engine, GatewayRepository) as uow:
            record = await uow.repo.active_api_key(key_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_id] = (record, time.monotonic() + self._cache_s)
        return record


class CsrfRefused(Problem):
    def __init__(self) -> None:
        super().__init__(403, "Forbidden", "CSRF token missing or wrong: send the crm_csrf cookie's value as "
                         "X-CSRF-Token", type_=PROBLEM_BASE + "csrf")


class CsrfTokens:
    """The CSRF token of a session: an HMAC of the session token, so it needs no storage, cannot be
    guessed without the gateway's secret, and changes with every session."""

    def __init__(self, auth_secret: str) -> None:
        # Its own key, derived from AUTH_SECRET, so a CSRF token is no signature valid elsewhere.
        self._key = hmac.new(auth_secret.encode(), b"crm console csrf v1", hashlib.sha256).digest()

    def token_for(self, session_token: str) -> str:
        digest = hmac.new(self._key, session_token.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def matches(self, session_token: str, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(self.token_for(session_token), presented)


@dataclass(frozen=True)
class Credentials:
    """What a request presents, read from its headers once."""

    authorization: str | None = None
    api_key: str | None = None
    session_token: str | None = None  # the crm_session cookie's value
    csrf_token: str | None = None

    @classmethod
    def of(cls, headers: list[tuple[bytes, bytes]]) -> Credentials:
        authorization = api_key = session = csrf = None
        for name, value in headers:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == API_KEY_HEADER:
                api_key = value.decode("latin-1")
            elif name == CSRF_HEADER:
                csrf = value.decode("latin-1").strip()
            elif name == b"cookie" and session is None:
                session = cookie_value(value.decode("latin-1"), SESSION_COOKIE)
        return cls(authorization, api_key, session, csrf)

    @property
    def uses_session(self) -> bool:
        """The cookie counts only when nothing else is presented: an app's own token always wins."""
        return self.authorization is None and self.api_key is None and self.session_token is not None


def cookie_value(header: str, name: str) -> str | None:
    for pair in header.split(";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key == name and value:
            return value.strip('"')
    return None


class Authenticator:
    def __init__(self, tokens: TokenVerifier, keys: ApiKeyStore, csrf: CsrfTokens) -> None:
        self.tokens = tokens
        self.keys = keys
        self.csrf = csrf

    async def authenticate(self, headers: list[tuple[bytes, bytes]], method: str = "GET") -> Identity:
        credentials = Credentials.of(headers)
        if credentials.authorization is not None:
            scheme, _, token = credentials.authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("use 'Authorization: Bearer <token>'")
            return await self.tokens.verify(token.strip())
        if credentials.api_key is not None:
            return await self.keys.verify(credentials.api_key.strip())
        if credentials.session_token is not None:
            identity = await self.tokens.verify(credentials.session_token)
            # A browser sends the cookie with any request to this origin, also one another site's
            # page makes it send: a write must prove it comes from a page that could read crm_csrf.
            if method in STATE_CHANGING_METHODS and not self.csrf.matches(credentials.session_token,
                                                                         credentials.csrf_token):
                raise CsrfRefused()
            return identity
        raise Unauthenticated("a bearer token, an API key or a session cookie is required")
