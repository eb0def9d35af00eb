"""Request and response models of the gateway's own routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class PartRead(BaseModel):
    """One service's part of the customer 360."""

    status: Literal["ok", "not_found", "forbidden", "unavailable"] = Field(
        description="ok: data below; not_found: the service holds nothing for this customer; forbidden: this "
                    "caller may not see this part (a customer's churn risk; an integration without the scope); "
                    "unavailable: the service failed or did not answer within the budget.")
    data: Any = None
    reason: str | None = Field(default=None, description="Why the part is unavailable.")


class Customer360Read(BaseModel):
    customer_id: str
    complete: bool = Field(description="False when at least one part is unavailable.")
    profile: PartRead
    loyalty: PartRead
    open_tickets: PartRead
    churn: PartRead


class RejectedEvent(BaseModel):
    index: int = Field(description="Position of the event in the batch, from 0.")
    id: str | None = Field(description="The event's id, when it has one.")
    reason: str


class EventsAccepted(BaseModel):
    """Per-event results of a batch: accepted ones are durably queued for Kafka."""

    accepted: list[str] = Field(description="Ids of the events accepted, in batch order.")
    rejected: list[RejectedEvent]


class ApiKeyCreate(BaseModel):
    client: str = Field(min_length=1, max_length=100, pattern=r"^[\w.:-]+$",
                        description="The integration this key belongs to, e.g. 'storefront-tracker'.")
    scopes: list[str] = Field(min_length=1, max_length=20)


class ApiKeyRead(BaseModel):
    key_id: str
    client: str
    scopes: list[str]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The key to send in X-API-Key. Shown once; only its hash is stored.")
