"""HTTP routes of the profile service (thin: read models and commands, no rules)."""

from __future__ import annotations

from crm_shared.db import DbConnection
from crm_shared.problems import PROBLEM_JSON, NotFound
from fastapi import APIRouter, Path
from sqlalchemy import select

from crm_profile.domain.events import format_amount
from crm_profile.models import customer_spend, customers
from crm_profile.schemas import ConsentsRead, ProfileRead

router = APIRouter(prefix="/v1/profiles", tags=["profiles"])


@router.get("/{customer_id}", response_model=ProfileRead,
            responses={404: {"content": {PROBLEM_JSON: {}}, "description": "Unknown customer"}})
async def get_profile(db: DbConnection,
                      customer_id: str = Path(min_length=1, max_length=100)) -> ProfileRead:
    """The customer's archive: identity, consents and purchase statistics."""
    row = (await db.execute(select(customers).where(customers.c.customer_id == customer_id))).first()
    if row is None:
        raise NotFound("customer", customer_id)
    spend = await db.execute(select(customer_spend.c.currency, customer_spend.c.amount)
                             .where(customer_spend.c.customer_id == customer_id))
    return ProfileRead(
        customer_id=row.customer_id, email=row.email, phone=row.phone, name=row.name,
        birthday=row.birthday, gender=row.gender, city=row.city, registered_at=row.registered_at,
        consents=ConsentsRead(email=row.consent_email, sms=row.consent_sms),
        order_count=row.order_count,
        total_spent={cur.strip(): format_amount(amount) for cur, amount in spend},
        first_order_at=row.first_order_at, last_order_at=row.last_order_at, updated_at=row.updated_at,
    )
