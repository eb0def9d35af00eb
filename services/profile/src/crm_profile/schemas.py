"""Request and response models of the profile API."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, Field


class ConsentsRead(BaseModel):
    email: bool | None = None
    sms: bool | None = None


class ProfileRead(BaseModel):
    customer_id: str
    email: str | None = None
    phone: str | None = None
    name: str | None = None
    birthday: date | None = None
    gender: str | None = None
    city: str | None = None
    registered_at: datetime | None = None
    consents: ConsentsRead
    order_count: int
    total_spent: dict[str, str] = Field(
        description="Spend per ISO 4217 currency, as decimal strings (paid orders).",
        examples=[{"CNY": "1299.00"}])
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    updated_at: datetime


class NoteCreate(BaseModel):
    body: str = Field(min_length=1, max_length=4000, description="What the agent wants colleagues to know.")


class NoteRead(BaseModel):
    note_id: UUID
    customer_id: str
    author: str = Field(description="The agent or supervisor who wrote it.")
    body: str
    created_at: datetime
