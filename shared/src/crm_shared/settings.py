"""Settings fragments shared by every service, read from the environment with pydantic-settings.

A service's own ``settings.py`` subclasses :class:`ServiceSettings` and adds what only it needs.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that mean "nobody set this secret". Refused outside dev and test so a forgotten
# secret cannot reach production.
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "dev-secret", "placeholder"})
# The default of every secret: long enough for HS256 (RFC 7518 §3.2), refused in prod.
DEV_SECRET = "change-me: a dev-only secret, refused in prod"
# HMAC keys shorter than the hash output weaken HS256 (RFC 7518 §3.2); refused in prod.
MIN_SECRET_BYTES = 32


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    PROD = "prod"


class ServiceSettings(BaseSettings):
    """What every service process needs: where its database and the broker are, and how to serve."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    service_name: str = Field(description="Short service name, e.g. 'profile'.")
    environment: Environment = Environment.DEV
    log_level: str = "INFO"
    log_json: bool = True

    http_host: str = "127.0.0.1"
    http_port: int = 8000

    # The service's own database (each service has one; no service reads another's tables).
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/crm"
    database_pool_size: int = 10
    # Where the metrics exporter's session lock connects when DATABASE_URL goes through a
    # transaction-mode pooler (a session lock there would outlive its client or be shared). Unset:
    # DATABASE_URL.
    database_session_url: str | None = None

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Consumer group; defaults to "crm-<service>". Tests set a unique one per run.
    consumer_group: str | None = None
    # Tansu answers each fetch only after fetch_max_wait_ms, so keep it low (design brief §2).
    kafka_fetch_max_wait_ms: Annotated[int, Field(ge=1, le=5000)] = 25
    # How soon a dead consumer's partitions move to a live one. Tansu also holds the first
    # JoinGroup for about half of it, so tests use a short one.
    kafka_session_timeout_ms: Annotated[int, Field(ge=1000, le=300_000)] = 10_000
    kafka_heartbeat_interval_ms: Annotated[int, Field(ge=100, le=100_000)] = 3_000
    # Larger batches coalesce more of one customer's events into one outgoing event and one row
    # update; 5,000 took the profile consumer from 6.4k to 8k events/s (bench/backbone.py).
    consumer_batch_max: Annotated[int, Field(ge=1, le=50_000)] = 5000
    outbox_batch_max: Annotated[int, Field(ge=1, le=50_000)] = 500
    outbox_poll_interval_s: Annotated[float, Field(gt=0)] = 1.0
    # The database-wide business metrics are read this often, by the one replica that exports them
    # (crm_shared.metrics.ExporterElection). The same value on every replica of a service.
    metrics_refresh_s: Annotated[float, Field(gt=0)] = 30.0

    # Lets supervisors run a scheduled job "as of" another moment (tests and demos of expiry,
    # birthdays, SLA breaches). Refused in production: it would let anyone with the role expire
    # points or breach SLAs early.
    jobs_accept_as_of: bool = False

    # Signs the identity the gateway forwards to the services (the same value everywhere).
    auth_secret: SecretStr = SecretStr(DEV_SECRET)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        """Accept plain ``postgresql://`` URLs and select the asyncpg driver."""
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix):]
        return url

    @model_validator(mode="after")
    def _secrets_are_real_outside_dev(self) -> ServiceSettings:
        if self.environment is Environment.PROD and self.jobs_accept_as_of:
            raise ValueError("JOBS_ACCEPT_AS_OF may not be set in production")
        if self.environment is Environment.PROD:
            for name, value in self._secret_fields():
                secret = value.get_secret_value().strip()
                if secret.lower() in PLACEHOLDER_SECRETS or secret.startswith("change-me"):
                    raise ValueError(
                        f"{name.upper()} holds a placeholder value; set a real secret outside dev and test"
                    )
                if len(secret.encode()) < MIN_SECRET_BYTES:
                    raise ValueError(f"{name.upper()} is shorter than {MIN_SECRET_BYTES} bytes")
        return self

    def _secret_fields(self) -> list[tuple[str, SecretStr]]:
        return [(n, v) for n, v in self.__dict__.items() if isinstance(v, SecretStr)]

    @property
    def metrics_lease_s(self) -> float:
        """How long a snapshot of the business metrics is served: two refreshes, so one slow or
        failed refresh does not blank them; also how long a new exporter waits before serving."""
        return 2 * self.metrics_refresh_s

    @property
    def group_id(self) -> str:
        return self.consumer_group or f"crm-{self.service_name}"

    @property
    def database_dsn(self) -> str:
        """The database URL in libpq form, for asyncpg connections outside SQLAlchemy (LISTEN)."""
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    @property
    def session_dsn(self) -> str:
        """A direct session to the database, in libpq form (the metrics exporter lock)."""
        url = self.database_session_url or self.database_url
        for prefix in ("postgresql+asyncpg://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql://" + url[len(prefix):]
        return url
