"""Request and response models of the tickets API (``*Create`` / ``*Update`` / ``*Read``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from crm_tickets.domain.policy import Priority, Status, TicketsPolicy

Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
LongText = Annotated[str, StringConstraints(max_length=20_000)]
Kind = Literal["complaint", "after_sales_repair", "after_sales_exchange", "return", "enquiry", "follow_up"]
Channel = Literal["phone", "chat", "email", "web", "app", "system"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TicketItem(_Body):
    sku: Text
    quantity: Annotated[int, Field(gt=0, le=100_000)] = 1


class TicketCreate(_Body):
    customer_id: Text
    kind: Kind
    channel: Channel
    subject: Text
    description: LongText = ""
    category: Text | None = None
    subcategory: Text | None = None
    order_id: Text | None = None
    items: list[TicketItem] = Field(default_factory=list, max_length=100)
    priority: Priority | None = Field(default=None, description="Agents only: overrides the computed priority.")


class TicketUpdate(_Body):
    """Agents' corrections; a priority set here is kept as an override."""

    category: Text | None = None
    subcategory: Text | None = None
    priority: Priority | None = None
    subject: Text | None = None
    root_cause: Text | None = None


class TransitionCreate(_Body):
    status: Status
    root_cause: Text | None = Field(default=None, description="Why it happened (complaint analysis); on resolve.")


class AssignmentCreate(_Body):
    agent_id: Text | None = Field(default=None, description="Omit to pick automatically within the group.")
    group_id: Text | None = None


class SlaClock(BaseModel):
    due_at: datetime | None
    state: Literal["running", "paused", "met", "breached", "stopped"]
    warning_sent: bool
    breached: bool
    left_minutes: float | None = Field(description="Business minutes left while paused.")


class TicketRead(BaseModel):
    ticket_id: str
    customer_id: str
    kind: str
    channel: str
    subject: str
    description: str
    category: str | None
    subcategory: str | None
    order_id: str | None
    items: list[dict[str, Any]]
    priority: str
    priority_overridden: bool
    status: str
    group_id: str | None
    assignee: str | None
    tier: str | None
    churn_level: str | None = Field(description="The customer's churn level when the ticket was opened; null in "
                                                "the customer's own view.")
    root_cause: str | None
    created_by: str
    created_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    reopened_count: int
    sla: dict[str, SlaClock]


class TicketPage(BaseModel):
    items: list[TicketRead]
    next_cursor: str | None


class CommentCreate(_Body):
    body: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
    public: bool = Field(default=True, description="False: an internal note, never shown to the customer.")
    article_id: Text | None = Field(default=None, description="The standard answer this reply was built from.")


class CommentRead(BaseModel):
    comment_id: str
    ticket_id: str
    author: str
    author_role: str
    public: bool
    body: str
    article_id: str | None
    created_at: datetime


class AttachmentCreate(_Body):
    filename: Text
    content_type: Annotated[str, StringConstraints(min_length=3, max_length=100)]
    size_bytes: Annotated[int, Field(ge=0, le=100 * 1024 * 1024)]
    url: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class AttachmentRead(AttachmentCreate):
    attachment_id: str
    ticket_id: str
    uploaded_by: str
    created_at: datetime


class HistoryRead(BaseModel):
    actor: str
    action: str
    changes: dict[str, Any]
    at: datetime


class CsatCreate(_Body):
    score: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str, StringConstraints(max_length=2000)] | None = None


class CsatRead(BaseModel):
    ticket_id: str
    score: int
    comment: str | None
    agent: str | None
    group_id: str | None
    submitted_at: datetime
    recorded_by: str | None = Field(
        default=None, description="The agent or supervisor who recorded an answer the customer gave on the phone; "
                                  "null when the customer rated the ticket themselves.")


class GroupCreate(_Body):
    group_id: Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=r"^[a-z0-9_\-]+$")]
    name: Text
    skills: list[Text] = Field(default_factory=list, description="Categories this queue handles.")
    strategy: Literal["round_robin", "least_loaded"] = "round_robin"


class GroupRead(GroupCreate):
    last_agent: str | None = None


class AgentUpdate(_Body):
    name: Text
    groups: list[Text] = Field(default_factory=list)
    available: bool = True


class AgentRead(AgentUpdate):
    agent_id: str
    open_tickets: int = 0


class AvailabilityUpdate(_Body):
    available: bool


class ArticleCreate(_Body):
    title: Text
    body: Annotated[str, StringConstraints(min_length=1, max_length=50_000)]
    category: Text | None = None


class ArticleRead(ArticleCreate):
    article_id: str
    updated_by: str
    updated_at: datetime
    rank: float | None = None


class PolicyRead(BaseModel):
    version: int
    created_by: str
    created_at: datetime
    config: TicketsPolicy


class PolicyUpdate(_Body):
    config: TicketsPolicy


class ScanRead(BaseModel):
    as_of: datetime
    events: int
