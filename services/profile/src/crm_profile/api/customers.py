"""Routes of the archive itself: search, the profile, agents' corrections, orders, timeline, notes."""

from __future__ import annotations

from datetime import datetime

from crm_shared import idempotency
from crm_shared.auth import ALL_ROLES, CurrentIdentity, Forbidden, Role
from crm_shared.http import current_request_id
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import PROBLEM_BASE, Problem
from crm_shared.tracing import current_traceparent
from fastapi import Header, Query, Request

from crm_profile.api.common import (
    BIGINT_MAX,
    PROBLEM,
    STAFF,
    CustomerIdPath,
    ReadUow,
    Uow,
    as_json,
    decode_cursor,
    encode_cursor,
    may_see_pii,
    resources,
    router,
)
from crm_profile.api.views import customer_view, match_read, read_model
from crm_profile.domain.events import format_amount
from crm_profile.domain.identity import is_valid_email, normalise_email, normalise_phone
from crm_profile.schemas import (
    NoteCreate,
    NoteRead,
    OrderItemRead,
    OrderPage,
    OrderRead,
    ProfileRead,
    ProfileUpdate,
    SearchResult,
    TimelineEntryRead,
    TimelinePage,
)
from crm_profile.usecases import customers, privacy
from crm_profile.usecases import identity as profiles


@router.get("", response_model=SearchResult,
            responses={422: {**PROBLEM, "description": "Not exactly one criterion"}})
async def search_profiles(request: Request, uow: ReadUow, identity: CurrentIdentity,
                          email: str | None = Query(None, max_length=320),
                          phone: str | None = Query(None, max_length=40),
                          name: str | None = Query(None, min_length=1, max_length=100,
                                                   description="A prefix of the name or of one of its words."),
                          customer_id: str | None = Query(None, max_length=100),
                          external_id: str | None = Query(None, max_length=232, pattern=r"^[a-z][a-z0-9_]{1,30}:.+$",
                                                          description="kind:value, e.g. erp:E-1001"),
                          cursor: str | None = Query(None, max_length=100),
                          limit: int = Query(20, ge=1, le=100)) -> SearchResult:
    """Find customers (agents and supervisors) by exactly one of: e-mail, phone (any common way
    of writing it), name prefix, customer id. Exact lookups go through keyed blind indexes, so the
    database never holds these values in clear. Results are masked; open a profile to see more."""
    identity.authorize(STAFF)
    given = {k: v for k, v in {"email": email, "phone": phone, "name": name, "customer_id": customer_id,
                               "external_id": external_id}.items() if v is not None}
    if len(given) != 1:
        raise Problem(422, "Invalid request",
                      "search by exactly one of email, phone, name, customer_id or external_id")
    (by, value), = given.items()
    res = resources(request)
    found, next_cursor = await customers.search_profiles(uow, res.vault, by=by, value=value,
                                                         phone_region=res.phone_default_region, after=cursor or "",
                                                         limit=limit)
    return SearchResult(items=[match_read(p) for p in found], next_cursor=next_cursor)


@router.get("/{customer_id}", response_model=ProfileRead,
            responses={404: {**PROBLEM, "description": "Unknown customer"},
                       403: {**PROBLEM, "description": "May not see this customer or reveal PII"}})
async def get_profile(request: Request, uow: ReadUow, identity: CurrentIdentity,
                      customer_id: str = CustomerIdPath,
                      reveal: bool = Query(False, description="Show PII in clear (needs the PII permission "
                                                              "and a reason; the read is audited)."),
                      reason: str | None = Header(None, alias="X-Access-Reason", min_length=3, max_length=200,
                                                  description="Why PII is revealed (kept in the audit log).")
                      ) -> ProfileRead:
    """The customer's archive: identity, consents and purchase statistics.

    A customer sees their own data in clear, without what the shop makes of them (churn level, RFM
    and custom segments, staff tags: left empty). Staff and integrations see e-mail, phone, name and
    address masked; with ``reveal=true``, the ``pii:read`` permission (supervisors always) and an
    ``X-Access-Reason``, they see them in clear and the read is written to the PII audit log.
    """
    identity.authorize(ALL_ROLES, scope="profiles:read", customer_id=customer_id)
    own = identity.role is Role.CUSTOMER
    vault = resources(request).vault
    if reveal and not own:
        if not may_see_pii(identity):
            raise Forbidden("revealing PII needs the pii:read permission")
        if reason is None:
            raise Problem(422, "Invalid request", "revealing PII needs an X-Access-Reason header")
        profile = await privacy.reveal_profile(uow, vault, customer_id, actor=identity.subject,
                                               role=str(identity.role), reason=reason,
                                               request_id=current_request_id.get())
    else:
        profile = await profiles.read_profile(uow, vault, customer_id)
    read = read_model(profile, clear=own or reveal)
    return customer_view(read) if own else read


@router.patch("/{customer_id}", response_model=ProfileRead,
              responses={404: {**PROBLEM, "description": "Unknown customer"},
                         409: {**PROBLEM, "description": "The customer was erased"},
                         422: {**PROBLEM, "description": "Invalid field; nothing was changed"}})
async def update_profile(body: ProfileUpdate, request: Request, uow: Uow, identity: CurrentIdentity,
                         customer_id: str = CustomerIdPath) -> ProfileRead:
    """Correct a customer's data (agents and supervisors). Fields left out keep their value; a
    consent change is recorded with the time and the agent as its source, and announced
    (``crm.profile.consent.changed``). A birthday whose month or day changed is announced
    (``crm.profile.customer.birthday_changed``, month and day only) so the loyalty service grants its
    birthday bonus in the right month. Answers the profile as the caller may see
    it (masked for staff)."""
    identity.authorize(STAFF)
    res = resources(request)
    errors = []
    email = normalise_email(body.email) if body.email is not None else None
    if body.email is not None and (email is None or not is_valid_email(email)):
        errors.append({"location": ["body", "email"], "message": "not a valid e-mail address", "type": "value_error"})
    phone = normalise_phone(body.phone, res.phone_default_region) if body.phone is not None else None
    if body.phone is not None and phone is None:
        errors.append({"location": ["body", "phone"], "message": "not a valid phone number", "type": "value_error"})
    if errors:
        raise Problem(422, "Invalid request", "The request does not match the schema; see errors.",
                      type_=PROBLEM_BASE + "invalid-request", errors=errors)
    await profiles.update_profile(
        uow, res.vault, customer_id=customer_id, actor=identity.subject, currency=res.rfm_currency, email=email,
        phone=phone, name=body.name, address=body.address, birthday=body.birthday, gender=body.gender,
        city=body.city, consents=body.consents.model_dump(exclude_none=True) if body.consents else {},
        locale=body.locale, time_zone=body.time_zone, tags=body.tags, external_ids=body.external_ids,
        traceparent=current_traceparent.get())
    await uow.commit()
    return read_model(await profiles.read_profile(uow, res.vault, customer_id), clear=False)


@router.get("/{customer_id}/orders", response_model=OrderPage)
async def list_orders(uow: ReadUow, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                      status: str | None = Query(None, pattern=r"^(placed|paid|completed|cancelled|refunded|"
                                                                 r"partially_refunded)$"),
                      cursor: str | None = Query(None, max_length=200),
                      limit: int = Query(20, ge=1, le=100)) -> OrderPage:
    """The customer's orders with their items, newest first (the customer, agents, supervisors, and
    integrations with the ``orders:read`` scope, such as an IVR telling a caller where an order is)."""
    identity.authorize(ALL_ROLES, scope="orders:read", customer_id=customer_id)
    rows, last = await customers.orders_page(uow, customer_id, status=status,
                                             after=decode_cursor(cursor) if cursor is not None else None,
                                             limit=limit)
    items = [OrderRead(
        order_id=r["order_id"], status=r["status"], currency=r["currency"].strip(),
        total_amount=format_amount(r["total_amount"]), refunded_amount=format_amount(r["refunded_amount"]),
        channel=r["channel"], items=[OrderItemRead(**i) for i in as_json(r["items"]) or []],
        placed_at=r["placed_at"], paid_at=r["paid_at"], completed_at=r["completed_at"],
        cancelled_at=r["cancelled_at"]) for r in rows]
    return OrderPage(items=items, next_cursor=encode_cursor(*last) if last else None)


@router.get("/{customer_id}/timeline", response_model=TimelinePage)
async def get_timeline(uow: ReadUow, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                       kind: str | None = Query(None, max_length=100, pattern=r"^[a-z_.]+$",
                                                description="`order`, `interaction`, or a full kind such as "
                                                            "`interaction.product_view`."),
                       since: datetime | None = None, until: datetime | None = None,
                       cursor: str | None = Query(None, max_length=200),
                       limit: int = Query(50, ge=1, le=200)) -> TimelinePage:
    """Everything that happened to a customer, newest first: interactions and orders (and, as the
    other services emit them, tickets, points and churn warnings). The call-centre agent's view."""
    identity.authorize(STAFF)
    after = None
    if cursor is not None:
        at, key = decode_cursor(cursor)
        if not key.isdigit() or int(key) > BIGINT_MAX:
            raise Problem(422, "Invalid request", "cursor is not one this API gave out")
        after = (at, int(key))
    rows, last = await customers.timeline_page(uow, customer_id, kind=kind, since=since, until=until, after=after,
                                               limit=limit)
    items = [TimelineEntryRead(occurred_at=r["occurred_at"], kind=r["kind"], channel=r["channel"],
                               details=as_json(r["details"]), event_id=r["event_id"]) for r in rows]
    return TimelinePage(items=items, next_cursor=encode_cursor(*last) if last else None)


@router.post("/{customer_id}/notes", status_code=201, response_model=NoteRead,
             responses={404: {**PROBLEM, "description": "Unknown customer"},
                        409: {**PROBLEM, "description": "Same key still in flight, or the customer was erased"},
                        422: {**PROBLEM, "description": "Invalid note or key reused"}})
async def add_note(body: NoteCreate, request: Request, uow: Uow, identity: CurrentIdentity,
                   key: IdempotencyKey, customer_id: str = CustomerIdPath) -> NoteRead:
    """Add an internal note to a customer (agents and supervisors; customers never see notes).

    Requires ``Idempotency-Key``: a retry with the same key returns the first answer and adds
    nothing.
    """
    identity.authorize(STAFF)
    replay = await idempotency.begin(uow, request, identity, key)
    if replay is not None:
        return replay
    note = NoteRead(**await customers.add_note(uow, customer_id, author=identity.subject, body=body.body))
    await idempotency.finish(uow, request, identity, key, 201, note)
    await uow.commit()
    return note


@router.get("/{customer_id}/notes", response_model=list[NoteRead])
async def list_notes(uow: Uow, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                     limit: int = Query(50, ge=1, le=200)) -> list[NoteRead]:
    """A customer's notes, newest first (agents and supervisors)."""
    identity.authorize(STAFF)
    return [NoteRead(**row) for row in await customers.list_notes(uow, customer_id, limit)]
