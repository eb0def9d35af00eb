"""Templates: per-locale parts (subject, html, text, body) of one channel, and their preview."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from crm_campaigns.domain.templates import MAX_SOURCE_CHARS
from crm_campaigns.schemas.audiences import Body, Name, ResourceId

Channel = Literal["email", "sms", "webhook", "notification"]
Locale = Literal["zh-CN", "en"]
Source = Annotated[str, StringConstraints(max_length=MAX_SOURCE_CHARS)]


class TemplateParts(Body):
    """Jinja2 sources; which parts a channel needs is checked by the domain (email: subject and
    html or text; sms: text; webhook and notification: a JSON object ``body``)."""

    subject: Source | None = None
    html: Source | None = None
    text: Source | None = None
    body: Source | None = None


class TemplateSettings(Body):
    name: Name
    channel: Channel
    contents: dict[Locale, TemplateParts] = Field(min_length=1, description="At least one locale.")


class TemplateCreate(TemplateSettings):
    template_id: ResourceId | None = Field(None, description="Absent: a UUID is generated.")


class TemplateUpdate(TemplateSettings):
    version: int = Field(ge=1, description="The version read; another one in force answers 409.")


class TemplateRead(BaseModel):
    template_id: str
    name: str
    channel: str
    contents: dict[str, dict[str, Any]]
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


Variable = str | int | float | None


class PreviewRequest(Body):
    locale: Locale | None = Field(None, description="Absent: the customer's, else the service's default.")
    customer_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        None, description="Take tier, points balance and locale from this member's projection (never their name).")
    variables: dict[Annotated[str, StringConstraints(max_length=50)], Variable] = Field(
        default_factory=dict, max_length=50, description="Override sample values (only the template variables).")


class PreviewRead(BaseModel):
    template_id: str
    channel: str
    locale: str
    subject: str | None
    html: str | None
    text: str | None
    body: dict[str, Any] | None
