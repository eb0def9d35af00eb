"""Profile service settings."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from crm_shared.logging import get_logger
from crm_shared.settings import Environment, ServiceSettings
from pydantic import SecretStr, model_validator

log = get_logger(__name__)


class ProfileSettings(ServiceSettings):
    service_name: str = "profile"
    http_port: int = 8001

    # Encrypts e-mail, phone, name and address at rest and keys their blind indexes: base64 of at
    # least 32 random bytes (`openssl rand -base64 32`). Required in prod. In dev and test, when
    # unset, a key is generated once into PII_KEY_FILE (with a warning) so restarts can read the data.
    pii_key: SecretStr | None = None
    pii_key_file: Path = Path(".crm/profile-pii.key")
    # Phone numbers written without a country code are read as numbers of this region.
    phone_default_region: str = "CN"
    # Monetary value (RFM's M, custom segments' net_spent) is counted in this currency only.
    rfm_currency: str = "CNY"
    # How often RFM scores and every custom segment are recomputed for the whole base.
    segment_refresh_interval_s: float = 300.0
    # The first run after start (soon, so a fresh deployment shows RFM scores).
    segment_refresh_first_delay_s: float = 30.0

    @model_validator(mode="after")
    def _pii_key_in_production(self) -> ProfileSettings:
        if self.environment is Environment.PROD and self.pii_key is None:
            raise ValueError("PII_KEY is required in prod (base64 of 32 random bytes)")
        if self.pii_key is not None:
            decode_pii_key(self.pii_key.get_secret_value())
        return self

    def master_pii_key(self) -> bytes:
        if self.pii_key is not None:
            return decode_pii_key(self.pii_key.get_secret_value())
        path = self.pii_key_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.b64encode(os.urandom(32)).decode())
            log.warning("generated a dev PII key; set PII_KEY outside dev", path=str(path))
        return decode_pii_key(path.read_text().strip())


def decode_pii_key(text: str) -> bytes:
    """A PII key as written in PII_KEY or a key file: base64 of at least 32 bytes."""
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("PII_KEY must be base64") from None
    if len(key) < 32:
        raise ValueError("PII_KEY must decode to at least 32 bytes")
    return key
