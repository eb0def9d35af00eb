"""Settings fragments shared by every service, read from the environment with pydantic-settings.

A service's own ``settings.py`` subclasses :class:`ServiceSettings` and adds what only it needs.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
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


class KafkaSecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class KafkaSaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


# The producer's max_request_size: the largest record a client sends. Kafka's own default limit
# (message.max.bytes) is about the same; raise both together.
DEFAULT_MAX_REQUEST_BYTES = 1_048_576

ENCRYPTED_KAFKA_PROTOCOLS = frozenset({KafkaSecurityProtocol.SSL, KafkaSecurityProtocol.SASL_SSL})


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP (``127.0.0.0/8``, ``::1``); a bracketed IPv6 literal is fine."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bootstrap_hosts(bootstrap_servers: str) -> list[str]:
    """The host part of each ``host:port`` of a comma-separated bootstrap list."""
    hosts = []
    for server in filter(None, (part.strip() for part in bootstrap_servers.split(","))):
        host = server.rsplit(":", 1)[0] if server.count(":") == 1 or server.startswith("[") else server
        hosts.append(host)
    return hosts


class KafkaConnection(BaseModel):
    """Where the broker is and how to reach it securely; every Kafka client is built from one.

    A bare bootstrap string (tests, benchmarks, the embedded dev broker) means PLAINTEXT.
    """

    model_config = ConfigDict(frozen=True)

    bootstrap_servers: str
    security_protocol: KafkaSecurityProtocol = KafkaSecurityProtocol.PLAINTEXT
    sasl_mechanism: KafkaSaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # PEM files. Without a CA file the system's trust store verifies the broker (managed Kafkas
    # with public certificates). A cert and key make it mutual TLS.
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None
    max_request_bytes: Annotated[int, Field(ge=1024)] = DEFAULT_MAX_REQUEST_BYTES

    @model_validator(mode="after")
    def _consistent(self) -> KafkaConnection:
        sasl = self.security_protocol in (KafkaSecurityProtocol.SASL_PLAINTEXT, KafkaSecurityProtocol.SASL_SSL)
        if sasl and (self.sasl_mechanism is None or not self.sasl_username or self.sasl_password is None):
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_MECHANISM, "
                             "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ValueError(f"KAFKA_SASL_* is set but KAFKA_SECURITY_PROTOCOL={self.security_protocol} "
                             "does not use SASL")
        tls_files = (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile, self.ssl_key_password)
        if self.security_protocol not in ENCRYPTED_KAFKA_PROTOCOLS and any(f is not None for f in tls_files):
            raise ValueError(f"KAFKA_SSL_* is set but KAFKA_SECURITY_PROTOCOL={self.security_protocol} "
                             "does not use TLS")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together (mutual TLS)")
        return self

    @property
    def encrypted(self) -> bool:
        return self.security_protocol in ENCRYPTED_KAFKA_PROTOCOLS

    @property
    def on_loopback(self) -> bool:
        hosts = bootstrap_hosts(self.bootstrap_servers)
        return bool(hosts) and all(is_loopback_host(host) for host in hosts)


class KafkaSettings(BaseSettings):
    """The broker connection from the environment (``KAFKA_*``), for services and the ``crm`` CLI.

    In production an unencrypted connection to a broker off this host is refused: events carry
    PII, and SASL PLAIN would send the password in the clear. ``KAFKA_ALLOW_PLAINTEXT`` waives
    that for a broker on a private network the deployment controls (the compose file's).
    """

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    environment: Environment = Environment.DEV
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: KafkaSecurityProtocol = KafkaSecurityProtocol.PLAINTEXT
    kafka_sasl_mechanism: KafkaSaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_allow_plaintext: bool = False
    # The largest record this process sends; larger outbox rows are dead-lettered (outbox.py).
    kafka_max_request_bytes: Annotated[int, Field(ge=1024)] = DEFAULT_MAX_REQUEST_BYTES

    @model_validator(mode="after")
    def _kafka_is_encrypted_in_production(self) -> KafkaSettings:
        kafka = self.kafka  # validates the combination
        if (self.environment is Environment.PROD and not kafka.encrypted and not kafka.on_loopback
                and not self.kafka_allow_plaintext):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={kafka.security_protocol} would send events unencrypted to "
                f"{kafka.bootstrap_servers}: use SSL or SASL_SSL in production (or set KAFKA_ALLOW_PLAINTEXT "
                "for a broker on a private network you control)")
        return self

    @property
    def kafka(self) -> KafkaConnection:
        return KafkaConnection(
            bootstrap_servers=self.kafka_bootstrap_servers, security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism, sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password, ssl_cafile=self.kafka_ssl_cafile,
            ssl_certfile=self.kafka_ssl_certfile, ssl_keyfile=self.kafka_ssl_keyfile,
            ssl_key_password=self.kafka_ssl_key_password, max_request_bytes=self.kafka_max_request_bytes)


class ServiceSettings(KafkaSettings):
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

    # The broker: kafka_bootstrap_servers and its security settings come from KafkaSettings.
    # Consumer group; defaults to "crm-<service>". Tests set a unique one per run.
    consumer_group: str | None = None
    # Tansu answers each fetch only after fetch_max_wait_ms, so keep it low (aiokafka's 500 ms delays every batch).
    kafka_fetch_max_wait_ms: Annotated[int, Field(ge=1, le=5000)] = 25
    # How soon a dead consumer's partitions move to a live one. Tansu also holds the first
    # JoinGroup for about half of it, so tests use a short one.
    kafka_session_timeout_ms: Annotated[int, Field(ge=1000, le=300_000)] = 10_000
    kafka_heartbeat_interval_ms: Annotated[int, Field(ge=100, le=100_000)] = 3_000
    # Larger batches coalesce more of one customer's events into one outgoing event and one row
    # update (bench/backbone.py; the figures in docs/benchmarks.md).
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

    # The gateway's secret: it derives one key per service from it and signs the identity it
    # forwards to that service with that key (auth.py). Only the gateway needs it in production.
    auth_secret: SecretStr = SecretStr(DEV_SECRET)
    # This service's own key for verifying forwarded identities (`crm identity-key <service>`).
    # Without it the key is derived from AUTH_SECRET (dev and test); required in production, so a
    # service never holds the secret that would let it sign for the others.
    identity_key: SecretStr | None = None
    # True for the one service that signs forwarded identities (the gateway).
    signs_identities: ClassVar[bool] = False

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
        # A deployment that forgets ENVIRONMENT=prod still runs as dev: the published dev secret
        # must not sign anything a network can reach, so a port off loopback counts as production.
        if self.environment is Environment.PROD or not is_loopback_host(self.http_host):
            where = "in production" if self.environment is Environment.PROD else f"on {self.http_host}"
            for name, value in self._secret_fields():
                secret = value.get_secret_value().strip()
                if secret.lower() in PLACEHOLDER_SECRETS or secret.startswith("change-me"):
                    raise ValueError(
                        f"{name.upper()} holds a placeholder value; set a real secret {where} "
                        "(placeholders are for dev and test on loopback only)")
                if len(secret.encode()) < MIN_SECRET_BYTES:
                    raise ValueError(f"{name.upper()} is shorter than {MIN_SECRET_BYTES} bytes")
        if self.environment is Environment.PROD and not self.signs_identities:
            if self.identity_key is None:
                raise ValueError(f"IDENTITY_KEY must be set in production: `crm identity-key {self.service_name}` "
                                 "prints it from the gateway's AUTH_SECRET")
            if "auth_secret" in self.model_fields_set:
                raise ValueError("AUTH_SECRET is the gateway's signing secret: give this service only its "
                                 "IDENTITY_KEY, so a compromise of it cannot forge identities for the others")
        return self

    def _secret_fields(self) -> list[tuple[str, SecretStr]]:
        # The signing and encryption keys in use; Kafka credentials are the broker's business.
        # A service other than the gateway uses AUTH_SECRET only to derive its key in dev and test.
        derives = self.identity_key is None and self.environment is not Environment.PROD
        unused = set() if self.signs_identities or derives else {"auth_secret"}
        return [(n, v) for n, v in self.__dict__.items()
                if isinstance(v, SecretStr) and not n.startswith("kafka_") and n not in unused]

    def identity_verification_key(self) -> str:
        """The key this service verifies forwarded identities with."""
        if self.identity_key is not None:
            return self.identity_key.get_secret_value()
        from crm_shared.auth import identity_key

        return identity_key(self.auth_secret.get_secret_value(), self.service_name)

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
