"""Gateway settings: token verification, upstreams, timeouts, limits. All from the environment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

from crm_shared.settings import DEV_SECRET, Environment, ServiceSettings
from pydantic import Field, SecretStr, field_validator, model_validator

# Algorithms that verify with a public key. HS* is only for the dev secret; "none" never.
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"})
SYMMETRIC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})


class GatewaySettings(ServiceSettings):
    signs_identities: ClassVar[bool] = True  # signs the identity it forwards, per service
    service_name: str = "gateway"
    http_port: int = 8000

    # --- Bearer tokens. Dev: HS256 with JWT_SECRET (`crm token` signs with it). Production: the
    # identity provider's JWKS_URL with RS256/ES256; then HS* tokens are refused outright.
    jwt_secret: SecretStr = SecretStr(DEV_SECRET)
    jwt_jwks_url: str | None = None
    jwt_algorithms: list[str] | None = None  # default: HS256 without a JWKS URL, RS256+ES256 with one
    jwt_issuer: str = "crm-dev"
    jwt_audience: str = "crm"
    jwt_leeway_s: Annotated[int, Field(ge=0, le=300)] = 30
    jwks_cache_s: Annotated[float, Field(gt=0)] = 300.0
    # Revoking a key takes effect at once on the gateway that revoked it, and within this many
    # seconds on the others.
    api_key_cache_s: Annotated[float, Field(ge=0)] = 5.0

    # --- Upstreams (base URLs of the services).
    profile_url: str = "http://127.0.0.1:8001"
    loyalty_url: str = "http://127.0.0.1:8002"
    tickets_url: str = "http://127.0.0.1:8003"
    churn_url: str = "http://127.0.0.1:8004"
    # A deployment without the campaigns service keeps working: its routes answer 502/503
    # problem+json, the customer 360 marks its part unavailable, readiness lists it failed.
    campaigns_url: str = "http://127.0.0.1:8005"
    upstream_connect_timeout_s: Annotated[float, Field(gt=0)] = 1.0
    # Default whole-request timeout of a proxied route; the route table sets its own where it differs.
    upstream_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    upstream_pool_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    # Extra attempts for idempotent requests (GET, HEAD, PUT, DELETE) after a timeout, a refused
    # connection or a 502/503/504. Never for POST or PATCH once the request may have been sent.
    upstream_retries: Annotated[int, Field(ge=0, le=5)] = 2
    breaker_failure_threshold: Annotated[int, Field(ge=1)] = 5
    breaker_recovery_s: Annotated[float, Field(gt=0)] = 10.0
    # The customer 360 answers within this budget; a part not back by then is marked unavailable.
    customer360_budget_s: Annotated[float, Field(gt=0)] = 0.8

    # --- Requests.
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    events_batch_max: Annotated[int, Field(ge=1, le=10_000)] = 500
    # Largest Kafka record (key, value and headers) an event of POST /v1/events may become. Keep
    # it under the broker's message.max.bytes (1 MiB by default in Kafka) and the topics'
    # max.message.bytes: the default leaves room for the record batch's own framing. A larger
    # event is refused with 413, since the outbox relay could never publish it.
    event_max_bytes: Annotated[int, Field(ge=1024)] = 1_000_000

    # --- Rate limits (`limits` notation, e.g. "600/minute"). Per calling client, and per customer
    # whose data is touched. Storage: memory:// per process, or redis://host:6379 shared.
    rate_limit_client: str = "1200/minute"
    rate_limit_customer: str = "300/minute"
    # Public routes (unsubscribe links, delivery callbacks) authenticate nobody: their budget is
    # per calling address (the peer, or X-Forwarded-For from FORWARDED_ALLOW_IPS proxies, as
    # uvicorn reads it). Generous: one delivery provider sends many callbacks from few addresses.
    rate_limit_address: str = "3000/minute"
    rate_limit_storage_url: str = "memory://"
    # Test hook: the rate limiter's clock stands still at this instant, so a test decides where
    # its requests fall in the window. Memory storage only; allowed only with ENVIRONMENT=test.
    rate_limit_frozen_at: datetime | None = None

    # --- Browsers: origins allowed to call the API (e.g. https://shop.example). Empty: none.
    cors_origins: list[str] = Field(default_factory=list)
    # Whether those origins may send X-API-Key. Off: an API key belongs in a server's secret
    # store, and any key a web page carries is public; browsers send their user's bearer token.
    cors_allow_api_key: bool = False

    # --- Console sign-in with OpenID Connect (authorization code + PKCE). Set OIDC_ISSUER_URL to
    # turn it on; the access token it yields must verify like any bearer token (JWT_JWKS_URL,
    # JWT_ISSUER, JWT_AUDIENCE). Without it, dev and test offer the dev sign-in instead.
    oidc_issuer_url: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None  # confidential clients; public ones use PKCE alone
    # Where the provider sends the browser back: this gateway's /v1/session/oidc/callback, as the
    # browser reaches it (e.g. https://crm.example/v1/session/oidc/callback).
    oidc_redirect_url: str | None = None
    oidc_scopes: str = "openid profile"
    # How long the provider's discovery document is kept.
    oidc_discovery_cache_s: Annotated[float, Field(gt=0)] = 3600.0

    @field_validator("jwt_algorithms")
    @classmethod
    def _known_algorithms(cls, algorithms: list[str] | None) -> list[str] | None:
        if algorithms is None:
            return None
        unknown = set(algorithms) - ASYMMETRIC_ALGORITHMS - SYMMETRIC_ALGORITHMS
        if unknown:  # "none" lands here too
            raise ValueError(f"unsupported JWT algorithms: {sorted(unknown)}")
        return algorithms

    @model_validator(mode="after")
    def _algorithms_match_keys(self) -> GatewaySettings:
        # Mixing HS* with public keys is what algorithm-confusion attacks exploit: a token signed
        # with HMAC over the public key would verify. One key kind per deployment.
        if self.jwt_jwks_url and set(self.verification_algorithms) & SYMMETRIC_ALGORITHMS:
            raise ValueError("with JWT_JWKS_URL only asymmetric algorithms (RS256, ES256, …) are allowed")
        if not self.jwt_jwks_url and set(self.verification_algorithms) & ASYMMETRIC_ALGORITHMS:
            raise ValueError("asymmetric JWT algorithms need JWT_JWKS_URL")
        return self

    @model_validator(mode="after")
    def _frozen_clock_only_in_tests(self) -> GatewaySettings:
        if self.rate_limit_frozen_at is not None:
            if self.environment is not Environment.TEST:
                raise ValueError("RATE_LIMIT_FROZEN_AT is a test hook; it needs ENVIRONMENT=test")
            if not self.rate_limit_storage_url.startswith("memory://"):
                raise ValueError("RATE_LIMIT_FROZEN_AT works with RATE_LIMIT_STORAGE_URL=memory:// only")
            if self.rate_limit_frozen_at.tzinfo is None:
                raise ValueError("RATE_LIMIT_FROZEN_AT must carry a timezone")
        return self

    @model_validator(mode="after")
    def _oidc_complete(self) -> GatewaySettings:
        if self.oidc_issuer_url:
            missing = [n.upper() for n in ("oidc_client_id", "oidc_redirect_url") if not getattr(self, n)]
            if missing:
                raise ValueError(f"OIDC_ISSUER_URL needs {', '.join(missing)}")
            if "openid" not in self.oidc_scopes.split():
                raise ValueError("OIDC_SCOPES must include 'openid'")
        return self

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer_url)

    @property
    def dev_sign_in_enabled(self) -> bool:
        """The console's dev sign-in: dev and test only, and only where the gateway itself can sign
        tokens it accepts (HS256, no identity provider configured)."""
        return (self.environment in (Environment.DEV, Environment.TEST) and not self.oidc_enabled
                and not self.jwt_jwks_url)

    @property
    def secure_cookies(self) -> bool:
        # Dev and test run on plain http://127.0.0.1; everywhere else cookies travel over TLS only.
        return self.environment not in (Environment.DEV, Environment.TEST)

    @property
    def verification_algorithms(self) -> list[str]:
        if self.jwt_algorithms:
            return self.jwt_algorithms
        return ["RS256", "ES256"] if self.jwt_jwks_url else ["HS256"]

    @property
    def upstream_urls(self) -> dict[str, str]:
        return {"profile": self.profile_url, "loyalty": self.loyalty_url,
                "tickets": self.tickets_url, "churn": self.churn_url, "campaigns": self.campaigns_url}

    def _secret_fields(self) -> list[tuple[str, SecretStr]]:
        # With a JWKS URL the HS256 secret is never used, so a placeholder there is harmless.
        fields = super()._secret_fields()
        return [(n, v) for n, v in fields if not (n == "jwt_secret" and self.jwt_jwks_url)]
