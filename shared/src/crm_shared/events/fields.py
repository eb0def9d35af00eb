"""The field types event data is built from (money, currency codes, customer ids, timestamps) and
:class:`EventData`, the base of every event's data model (here so that modules of the catalogue
beyond ``catalogue.py`` can build on it)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints


def _no_float(value: Any) -> Any:
    # A float has already lost cents (0.1 + 0.2); the contract says decimal strings.
    if isinstance(value, float):
        raise ValueError("money must be a decimal string such as \"12.50\", not a JSON number")
    if isinstance(value, bool):
        raise ValueError("money must be a decimal string")
    return value


_MONEY_LIMIT = Decimal("1e10")


def money_range(value: Decimal) -> Decimal:
    # Hand-written instead of Field(max_digits=…, decimal_places=…): pydantic checks those in Python,
    # a visible share of the profile consumer's time (py-spy on bench/backbone.py, docs/benchmarks.md).
    if not value.is_finite():
        raise ValueError("money must be a finite decimal")
    if value.as_tuple().exponent < -4:
        raise ValueError("money has at most 4 decimal places")
    if not 0 <= value < _MONEY_LIMIT:
        raise ValueError("money must be between 0 and 9,999,999,999.9999")
    return value


Amount = Annotated[Decimal, BeforeValidator(_no_float), AfterValidator(money_range)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
ShortText = Annotated[str, StringConstraints(max_length=200)]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a timezone (RFC 3339)")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


def _known_time_zone(value: str) -> str:
    # The pattern keeps out paths ("../x") and blanks; zoneinfo says whether the zone exists (the
    # tz database of the system, as the tickets service's business hours use it).
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


# A BCP 47 language tag as shops send it ("en", "zh-CN", "zh-Hans-CN", "de-CH-1996"): the primary
# language and optional subtags; the campaigns service picks a template's language by it.
Locale = Annotated[str, StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")]
# An IANA time zone name ("Asia/Shanghai", "UTC"), for sending at a customer's local time.
TimeZoneName = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                                pattern=r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$"),
                         AfterValidator(_known_time_zone)]


class EventData(BaseModel):
    # Unknown fields are ignored so publishers can add fields without breaking us.
    model_config = ConfigDict(extra="ignore", frozen=True)


__all__ = ["Amount", "AwareDatetime", "CurrencyCode", "CustomerId", "EventData", "Locale", "ShortText", "TimeZoneName"]
