"""Settings of the loyalty service (environment variables, see README)."""

from __future__ import annotations

from typing import Annotated

from crm_shared.settings import DEV_SECRET, ServiceSettings
from pydantic import Field, SecretStr


class LoyaltySettings(ServiceSettings):
    service_name: str = "loyalty"
    http_port: int = 8002
    # The scheduled jobs (release, expiry, notices, tier downgrades, birthdays) run this often.
    jobs_interval_s: Annotated[float, Field(gt=0)] = 3600.0
    jobs_first_delay_s: Annotated[float, Field(ge=0)] = 60.0
    # Keys the referral fraud guard's blind index (HMAC-SHA256 of a member's normalised e-mail,
    # phone and payment token). Placeholders are refused in production like every secret; changing
    # it makes the stored digests unmatchable (new referrals are then compared on new digests only).
    fingerprint_key: SecretStr = SecretStr(DEV_SECRET)
