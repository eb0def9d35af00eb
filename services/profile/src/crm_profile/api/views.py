"""How the archive's records become the API's read models (masking included)."""

from __future__ import annotations

from decimal import Decimal

from crm_profile.api.common import as_json
from crm_profile.domain.events import format_amount
from crm_profile.domain.pii import mask_address, mask_email, mask_name, mask_phone
from crm_profile.domain.views import HIDDEN_PROFILE_FIELDS
from crm_profile.schemas import (
    ActivityRead,
    CategoryRead,
    ConsentRead,
    ConsentsRead,
    CustomerMatch,
    ProfileRead,
    RfmRead,
    SegmentRead,
)

PII_FIELDS = ["email", "phone", "name", "address"]


def consent_read(profile: dict, channel: str) -> ConsentRead:
    return ConsentRead(granted=profile[f"consent_{channel}"], changed_at=profile[f"consent_{channel}_at"],
                       source=profile[f"consent_{channel}_source"])


def mask_identifier(value: str) -> str:
    return "*" * max(3, len(value) - 4) + value[-4:] if len(value) > 4 else "***"


def customer_view(read: ProfileRead) -> ProfileRead:
    """The customer's own profile: without the shop's churn level, segments and staff tags."""
    return read.model_copy(update=HIDDEN_PROFILE_FIELDS)


def read_model(profile: dict, *, clear: bool) -> ProfileRead:
    external = profile.get("external_ids") or {}
    if not clear:
        external = {kind: mask_identifier(value) for kind, value in external.items()}
    pii = {name: profile[name] for name in PII_FIELDS}
    if not clear:
        pii = {"email": mask_email(pii["email"]), "phone": mask_phone(pii["phone"]),
               "name": mask_name(pii["name"]), "address": mask_address(pii["address"])}
    spend = as_json(profile["spend"]) or {}
    net = {cur.strip(): Decimal(v["paid"]) - Decimal(v["refunded"]) for cur, v in spend.items()}
    orders = {cur.strip(): v["orders"] for cur, v in spend.items()}
    return ProfileRead(
        customer_id=profile["customer_id"], pii="clear" if clear else "masked", **pii,
        birthday=profile["birthday"], gender=profile["gender"], city=profile["city"],
        registered_at=profile["registered_at"], locale=profile.get("locale"), time_zone=profile.get("time_zone"),
        consents=ConsentsRead(email=consent_read(profile, "email"), sms=consent_read(profile, "sms")),
        tags=list(profile["tags"] or []), external_ids=external, order_count=profile["order_count"],
        total_spent={cur: format_amount(amount) for cur, amount in net.items()},
        refunded={cur.strip(): format_amount(Decimal(v["refunded"])) for cur, v in spend.items()
                  if Decimal(v["refunded"])},
        average_order_value={cur: format_amount((amount / orders[cur]).quantize(Decimal("0.01")))
                             for cur, amount in net.items() if orders[cur]},
        return_rate=(round(profile["refunded_order_count"] / profile["order_count"], 4)
                     if profile["order_count"] else 0.0),
        categories=[CategoryRead(**c) for c in as_json(profile["categories"]) or []],
        favourite_categories=list(profile["favourite_categories"] or []),
        activity=ActivityRead(**(as_json(profile["activity"]) or {})),
        first_order_at=profile["first_order_at"], last_order_at=profile["last_order_at"],
        rfm=(RfmRead(r=profile["rfm_r"], f=profile["rfm_f"], m=profile["rfm_m"], segment=profile["rfm_segment"],
                     scored_at=profile["rfm_scored_at"]) if profile["rfm_segment"] else None),
        segments=list(profile["segments"] or []), tier=profile["tier"], churn_level=profile["churn_level"],
        erased_at=profile["erased_at"], merged_into=profile["merged_into"], updated_at=profile["updated_at"])


def match_read(profile: dict) -> CustomerMatch:
    return CustomerMatch(customer_id=profile["customer_id"], name=mask_name(profile["name"]),
                         email=mask_email(profile["email"]), phone=mask_phone(profile["phone"]), city=profile["city"])


def segment_read(row: dict, members: int) -> SegmentRead:
    return SegmentRead(segment_id=row["segment_id"], name=row["name"], description=row["description"],
                       rule=as_json(row["rule"]), members=members, created_by=row["created_by"],
                       updated_at=row["updated_at"])


def rfm_segment_read(segment_id: str, members: int) -> SegmentRead:
    return SegmentRead(segment_id=segment_id, name=segment_id[4:].replace("_", " ").title(), rule=None,
                       members=members)
