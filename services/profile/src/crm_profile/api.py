"""HTTP routes of the profile service (thin: read models and commands, no rules)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from crm_shared import idempotency
from crm_shared.auth import ALL_ROLES, CurrentIdentity, Role
from crm_shared.db import DbConnection, DbReadConnection
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import PROBLEM_JSON, NotFound
from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import Text, cast, func, insert, select

from crm_profile.domain.events import format_amount
from crm_profile.models import customer_notes, customer_spend, customers
from crm_profile.schemas import ConsentsRead, NoteCreate, NoteRead, ProfileRead

STAFF = frozenset({Role.AGENT, Role.SUPERVISOR})
CustomerIdPath = Path(min_length=1, max_length=100)

router = APIRouter(prefix="/v1/profiles", tags=["profiles"])


@router.get("/{customer_id}", response_model=ProfileRead,
            responses={404: {"content": {PROBLEM_JSON: {}}, "description": "Unknown customer"}})
async def get_profile(db: DbReadConnection, identity: CurrentIdentity,
                      customer_id: str = CustomerIdPath) -> ProfileRead:
    """The customer's archive: identity, consents and purchase statistics."""
    identity.authorize(ALL_ROLES, scope="profiles:read", customer_id=customer_id)
    # One statement: the spend per currency comes along as JSON, amounts as text (never floats).
    spend = (select(func.json_object_agg(customer_spend.c.currency, cast(customer_spend.c.amount, Text)))
             .where(customer_spend.c.customer_id == customers.c.customer_id).scalar_subquery())
    row = (await db.execute(select(customers, spend.label("spend"))
                            .where(customers.c.customer_id == customer_id))).first()
    if row is None:
        raise NotFound("customer", customer_id)
    total_spent = orjson.loads(row.spend) if isinstance(row.spend, str) else (row.spend or {})
    return ProfileRead(
        customer_id=row.customer_id, email=row.email, phone=row.phone, name=row.name,
        birthday=row.birthday, gender=row.gender, city=row.city, registered_at=row.registered_at,
        consents=ConsentsRead(email=row.consent_email, sms=row.consent_sms),
        order_count=row.order_count,
        total_spent={cur.strip(): format_amount(Decimal(amount)) for cur, amount in total_spent.items()},
        first_order_at=row.first_order_at, last_order_at=row.last_order_at, updated_at=row.updated_at,
    )


@router.post("/{customer_id}/notes", status_code=201, response_model=NoteRead,
             responses={404: {"content": {PROBLEM_JSON: {}}, "description": "Unknown customer"},
                        409: {"content": {PROBLEM_JSON: {}}, "description": "Same key still in flight"},
                        422: {"content": {PROBLEM_JSON: {}}, "description": "Invalid note or key reused"}})
async def add_note(body: NoteCreate, request: Request, db: DbConnection, identity: CurrentIdentity,
                   key: IdempotencyKey, customer_id: str = CustomerIdPath) -> NoteRead:
    """Add an internal note to a customer (agents and supervisors; customers never see notes).

    Requires ``Idempotency-Key``: a retry with the same key returns the first answer and adds
    nothing.
    """
    identity.authorize(STAFF)
    replay = await idempotency.begin(db, request, identity, key)
    if replay is not None:
        return replay
    known = await db.execute(select(customers.c.customer_id).where(customers.c.customer_id == customer_id))
    if known.first() is None:
        raise NotFound("customer", customer_id)
    note = NoteRead(note_id=uuid.uuid4(), customer_id=customer_id, author=identity.subject, body=body.body,
                    created_at=datetime.now(UTC))
    await db.execute(insert(customer_notes).values(**note.model_dump()))
    await idempotency.finish(db, request, identity, key, 201, note)
    await db.commit()
    return note


@router.get("/{customer_id}/notes", response_model=list[NoteRead])
async def list_notes(db: DbConnection, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                     limit: int = Query(50, ge=1, le=200)) -> list[NoteRead]:
    """A customer's notes, newest first (agents and supervisors)."""
    identity.authorize(STAFF)
    rows = await db.execute(select(customer_notes).where(customer_notes.c.customer_id == customer_id)
                            .order_by(customer_notes.c.created_at.desc()).limit(limit))
    return [NoteRead(**row._mapping) for row in rows]
