"""Request and response models of the gateway's own routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator


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
    campaign_contacts: PartRead = Field(description="The customer's recent campaign contacts (at most 10): "
                                                    '{"items": [{campaign_id, campaign_name, channel, group, '
                                                    "status, contacted_at}]}.")


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


class InteractionCreate(BaseModel):
    """A phone call or chat with the customer, as the call-centre app records it."""

    model_config = ConfigDict(extra="forbid")  # who recorded it comes from the token, nothing else is kept

    kind: Literal["call", "chat"]
    occurred_at: AwareDatetime = Field(description="When the call or chat began (RFC 3339, with a timezone).")
    channel: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,30}$",
                                description="e.g. phone, whatsapp, web_chat; default phone for a call, chat for a "
                                            "chat.")
    direction: Literal["inbound", "outbound"] = "inbound"
    duration_s: int | None = Field(default=None, ge=0, le=86_400)
    ticket_id: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[\w.:-]+$",
                                  description="The ticket the call or chat was about, if any.")


class InteractionRecorded(BaseModel):
    """The interaction as queued for Kafka: the profile timeline and the churn model get it from there."""

    event_id: str = Field(description="The same for a retry with the same Idempotency-Key.")
    customer_id: str
    kind: str
    channel: str
    occurred_at: datetime
    recorded_by: str = Field(description="The agent or supervisor whose token recorded it.")


class SessionConfig(BaseModel):
    environment: str = Field(description="dev, test or prod.")
    methods: list[Literal["dev", "oidc"]] = Field(
        description='How the console signs in: ["oidc"] when OIDC_ISSUER_URL is set, ["dev"] in dev and test '
                    "otherwise, [] when neither is possible.")


class DevSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["agent", "supervisor", "marketer"] = Field(description="The console's staff roles only.")
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,60}$", description="Becomes the token's subject.",
                      examples=["li.na"])
    # An identity provider grants an agent the PII permission by a scope; the dev sign-in lets one try both.
    pii: bool = Field(False, description="Give an agent the pii:read scope (reveal PII, audited). "
                                         "Supervisors always may; marketers never.")

    @model_validator(mode="after")
    def _pii_for_agents_only(self) -> DevSignIn:
        if self.pii and self.role != "agent":
            raise ValueError("pii applies to agents only: supervisors always may reveal, marketers never")
        return self


class SessionRead(BaseModel):
    subject: str
    role: str
    scopes: list[str]
    expires_at: AwareDatetime | None = Field(description="When the token runs out (none for an API key).")
    csrf_token: str | None = Field(default=None, description="What to send as X-CSRF-Token on a write; only "
                                                             "for a session cookie (bearer callers need none).")
