"""HTTP routes of the profile service (thin: read models and commands, no rules)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from crm_shared import idempotency
from crm_shared.auth import ALL_ROLES, CurrentIdentity, Forbidden, Identity, Role
from crm_shared.bus import add_to_outbox
from crm_shared.db import DbConnection, DbReadConnection
from crm_shared.http import current_request_id
from crm_shared.idempotency import IdempotencyKey
from crm_shared.problems import PROBLEM_BASE, PROBLEM_JSON, NotFound, Problem
from crm_shared.tracing import current_traceparent
from crm_shared.uow import UnitOfWork, unit_of_work
from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_profile.domain.events import (
    birthday_changed,
    customer_erased,
    customer_merged,
    customer_unmerged,
    format_amount,
)
from crm_profile.domain.identity import is_valid_email, name_search_key, normalise_email, normalise_phone
from crm_profile.domain.pii import PiiVault, mask_address, mask_email, mask_name, mask_phone
from crm_profile.domain.segments import RFM_SEGMENTS, CompiledRule, Rule
from crm_profile.domain.views import HIDDEN_EXPORT_SECTIONS, HIDDEN_PROFILE_FIELDS, customer_timeline
from crm_profile.erasure import erase_profiles, lock_erasure_group, refuse_if_erased
from crm_profile.models import (
    customer_notes,
    customers,
    orders,
    pii_access_log,
    segment_members,
    segments,
    timeline,
)
from crm_profile.repository import (
    IdentityChange,
    MergeRefused,
    emit_customer_updated,
    export_related,
    external_field,
    external_ids_of,
    find_duplicates,
    load_profile,
    merge_profiles,
    record_pii_access,
    record_privacy_request,
    search_customer_ids,
    set_external_ids,
    unmerge_profiles,
    write_identities,
)
from crm_profile.repository.segments import SegmentRepository
from crm_profile.schemas import (
    ActivityRead,
    CategoryRead,
    ConsentRead,
    ConsentsRead,
    CustomerMatch,
    DuplicateRead,
    ErasureCreate,
    ErasureRead,
    MergeCreate,
    MergeRead,
    NoteCreate,
    NoteRead,
    OrderItemRead,
    OrderPage,
    OrderRead,
    PiiAccessPage,
    PiiAccessRead,
    ProfileExport,
    ProfileRead,
    ProfileUpdate,
    RefreshRead,
    RfmRead,
    SearchResult,
    SegmentCreate,
    SegmentMember,
    SegmentMemberPage,
    SegmentRead,
    SegmentUpdate,
    TimelineEntryRead,
    TimelinePage,
    UnmergeCreate,
    UnmergeRead,
)
from crm_profile.usecases import segments as segment_usecases


# Bridges from this module's connections to the segment use cases (i18-pii), until the routes
# take units of work: refresh_segments(uow, …), SegmentRepository.segment_sizes, jobs.refresh_segments_now.
async def refresh_segments(db, currency, customer_ids=None, segment_id=None) -> int:
    return await segment_usecases.refresh_segments(UnitOfWork(db, SegmentRepository), currency, customer_ids,
                                                   segment_id)


async def segment_sizes(db) -> dict[str, int]:
    return await SegmentRepository(db).segment_sizes()


async def run_refresh(engine, currency, metrics):
    return await segment_usecases.run_refresh(lambda: unit_of_work(engine, SegmentRepository), currency,
                                              took=metrics.refresh_duration.observe,
                                              then=lambda: metrics.refresh(engine))


STAFF = frozenset({Role.AGENT, Role.SUPERVISOR})
CustomerIdPath = Path(min_length=1, max_length=100)
BIGINT_MAX = 2**63 - 1  # ids in cursors are PostgreSQL bigints; larger ones are not ours

router = APIRouter(prefix="/v1/profiles", tags=["profiles"])
audit_router = APIRouter(prefix="/v1/audit", tags=["audit"])
segments_router = APIRouter(prefix="/v1/segments", tags=["segments"])

STAFF = frozenset({Role.AGENT, Role.SUPERVISOR})
SUPERVISOR = frozenset({Role.SUPERVISOR})
PII_FIELDS = ["email", "phone", "name", "address"]
CustomerIdPath = Path(min_length=1, max_length=100)
_PROBLEM = {"content": {PROBLEM_JSON: {}}}


def _vault(request: Request) -> PiiVault:
    return request.app.state.resources.vault


def _region(request: Request) -> str:
    return request.app.state.resources.settings.phone_default_region


def _settings(request: Request):
    return request.app.state.resources.settings


def may_see_pii(identity: Identity) -> bool:
    """Supervisors; agents and integrations whose token carries the ``pii:read`` scope."""
    return identity.role is Role.SUPERVISOR or (
        identity.role in (Role.AGENT, Role.SERVICE) and "pii:read" in identity.scopes)


async def _full_profile(db, vault: PiiVault, customer_id: str) -> dict | None:
    profile = await load_profile(db, vault, customer_id)
    if profile is not None:
        profile["external_ids"] = await external_ids_of(db, vault, customer_id)
    return profile


def _consent(profile: dict, channel: str) -> ConsentRead:
    return ConsentRead(granted=profile[f"consent_{channel}"], changed_at=profile[f"consent_{channel}_at"],
                       source=profile[f"consent_{channel}_source"])


def _json(value):
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def mask_identifier(value: str) -> str:
    return "*" * max(3, len(value) - 4) + value[-4:] if len(value) > 4 else "***"


def _customer_view(read: ProfileRead) -> ProfileRead:
    """The customer's own profile: without the shop's churn level, segments and staff tags."""
    return read.model_copy(update=HIDDEN_PROFILE_FIELDS)


def _read_model(profile: dict, *, clear: bool) -> ProfileRead:
    external = profile.get("external_ids") or {}
    if not clear:
        external = {kind: mask_identifier(value) for kind, value in external.items()}
    pii = {name: profile[name] for name in PII_FIELDS}
    if not clear:
        pii = {"email": mask_email(pii["email"]), "phone": mask_phone(pii["phone"]),
               "name": mask_name(pii["name"]), "address": mask_address(pii["address"])}
    spend = _json(profile["spend"]) or {}
    net = {cur.strip(): Decimal(v["paid"]) - Decimal(v["refunded"]) for cur, v in spend.items()}
    orders = {cur.strip(): v["orders"] for cur, v in spend.items()}
    return ProfileRead(
        customer_id=profile["customer_id"], pii="clear" if clear else "masked", **pii,
        birthday=profile["birthday"], gender=profile["gender"], city=profile["city"],
        registered_at=profile["registered_at"],
        consents=ConsentsRead(email=_consent(profile, "email"), sms=_consent(profile, "sms")),
        tags=list(profile["tags"] or []), external_ids=external, order_count=profile["order_count"],
        total_spent={cur: format_amount(amount) for cur, amount in net.items()},
        refunded={cur.strip(): format_amount(Decimal(v["refunded"])) for cur, v in spend.items()
                  if Decimal(v["refunded"])},
        average_order_value={cur: format_amount((amount / orders[cur]).quantize(Decimal("0.01")))
                             for cur, amount in net.items() if orders[cur]},
        return_rate=(round(profile["refunded_order_count"] / profile["order_count"], 4)
                     if profile["order_count"] else 0.0),
        categories=[CategoryRead(**c) for c in _json(profile["categories"]) or []],
        favourite_categories=list(profile["favourite_categories"] or []),
        activity=ActivityRead(**(_json(profile["activity"]) or {})),
        first_order_at=profile["first_order_at"], last_order_at=profile["last_order_at"],
        rfm=(RfmRead(r=profile["rfm_r"], f=profile["rfm_f"], m=profile["rfm_m"], segment=profile["rfm_segment"],
                     scored_at=profile["rfm_scored_at"]) if profile["rfm_segment"] else None),
        segments=list(profile["segments"] or []), tier=profile["tier"], churn_level=profile["churn_level"],
        erased_at=profile["erased_at"], merged_into=profile["merged_into"], updated_at=profile["updated_at"])


@router.get("", response_model=SearchResult,
            responses={422: {**_PROBLEM, "description": "Not exactly one criterion"}})
async def search_profiles(request: Request, db: DbReadConnection, identity: CurrentIdentity,
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
    vault = _vault(request)
    key: object = value
    if by == "email":
        key = vault.index("email", normalise_email(value))
    elif by == "phone":
        key = vault.index("phone", normalise_phone(value, _region(request)))
    elif by == "name":
        key = vault.index("name", name_search_key(value)[:12])
    kind = None
    if by == "external_id":
        kind, _, raw = value.partition(":")
        key = vault.index(external_field(kind), raw.strip())
    ids = [] if key is None else await search_customer_ids(db, by, key, after=cursor or "", limit=limit + 1,
                                                           kind=kind)
    items = []
    for found in ids[:limit]:
        profile = await load_profile(db, vault, found)
        if profile is not None:
            items.append(CustomerMatch(customer_id=found, name=mask_name(profile["name"]),
                                       email=mask_email(profile["email"]), phone=mask_phone(profile["phone"]),
                                       city=profile["city"]))
    return SearchResult(items=items, next_cursor=ids[limit - 1] if len(ids) > limit else None)


@router.get("/{customer_id}", response_model=ProfileRead,
            responses={404: {**_PROBLEM, "description": "Unknown customer"},
                       403: {**_PROBLEM, "description": "May not see this customer or reveal PII"}})
async def get_profile(request: Request, db: DbReadConnection, identity: CurrentIdentity,
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
    if reveal and not own:
        if not may_see_pii(identity):
            raise Forbidden("revealing PII needs the pii:read permission")
        if reason is None:
            raise Problem(422, "Invalid request", "revealing PII needs an X-Access-Reason header")
    profile = await _full_profile(db, _vault(request), customer_id)
    if profile is None:
        raise NotFound("customer", customer_id)
    if reveal and not own:
        await record_pii_access(db, actor=identity.subject, role=str(identity.role), customer_id=customer_id,
                                fields=[f for f in PII_FIELDS if profile[f] is not None], reason=reason,
                                request_id=current_request_id.get())
    read = _read_model(profile, clear=own or reveal)
    return _customer_view(read) if own else read


@router.patch("/{customer_id}", response_model=ProfileRead,
              responses={404: {**_PROBLEM, "description": "Unknown customer"},
                         409: {**_PROBLEM, "description": "The customer was erased"},
                         422: {**_PROBLEM, "description": "Invalid field; nothing was changed"}})
async def update_profile(body: ProfileUpdate, request: Request, db: DbConnection, identity: CurrentIdentity,
                         customer_id: str = CustomerIdPath) -> ProfileRead:
    """Correct a customer's data (agents and supervisors). Fields left out keep their value; a
    consent change is recorded with the time and the agent as its source. A birthday whose month or
    day changed is announced (``crm.profile.customer.birthday_changed``, month and day only) so the
    loyalty service greets the member on the right day. Answers the profile as the caller may see
    it (masked for staff)."""
    identity.authorize(STAFF)
    errors = []
    email = normalise_email(body.email) if body.email is not None else None
    if body.email is not None and (email is None or not is_valid_email(email)):
        errors.append({"location": ["body", "email"], "message": "not a valid e-mail address", "type": "value_error"})
    phone = normalise_phone(body.phone, _region(request)) if body.phone is not None else None
    if body.phone is not None and phone is None:
        errors.append({"location": ["body", "phone"], "message": "not a valid phone number", "type": "value_error"})
    if errors:
        raise Problem(422, "Invalid request", "The request does not match the schema; see errors.",
                      type_=PROBLEM_BASE + "invalid-request", errors=errors)
    before = (await db.execute(select(customers.c.birthday, customers.c.erased_at)
                               .where(customers.c.customer_id == customer_id).with_for_update())).first()
    if before is None:
        raise NotFound("customer", customer_id)
    await refuse_if_erased(db, customer_id)
    consents = body.consents.model_dump(exclude_none=True) if body.consents else {}
    change = IdentityChange(customer_id=customer_id, changed_at=datetime.now(UTC), source=f"agent:{identity.subject}",
                            email=email, phone=phone, name=body.name, address=body.address, birthday=body.birthday,
                            gender=body.gender, city=body.city, consents=consents, tags=body.tags)
    vault = _vault(request)
    statistics = await write_identities(db, vault, [change])
    await emit_customer_updated(db, statistics, changed=["identity"],
                                traceparents={customer_id: current_traceparent.get()})
    old_day = (before.birthday.month, before.birthday.day) if before.birthday else None
    if body.birthday is not None and (body.birthday.month, body.birthday.day) != old_day and before.erased_at is None:
        # Loyalty reads birthdays from commerce.customer.*; an agent's correction reaches it so.
        await add_to_outbox(db, [birthday_changed(customer_id=customer_id, birthday=body.birthday,
                                                  changed_at=change.changed_at,
                                                  traceparent=current_traceparent.get())])
    if body.external_ids:
        await set_external_ids(db, vault, customer_id, body.external_ids, source=f"agent:{identity.subject}")
    await refresh_segments(db, _settings(request).rfm_currency, [customer_id])  # tags, city, gender
    await db.commit()
    profile = await _full_profile(db, vault, customer_id)
    return _read_model(profile, clear=False)


def _encode_cursor(at: datetime, key: object) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{key}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, _, key = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(at), key
    except (ValueError, UnicodeDecodeError):
        raise Problem(422, "Invalid request", "cursor is not one this API gave out") from None


@router.get("/{customer_id}/orders", response_model=OrderPage)
async def list_orders(db: DbReadConnection, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                      status: str | None = Query(None, pattern=r"^(placed|paid|completed|cancelled|refunded|"
                                                                 r"partially_refunded)$"),
                      cursor: str | None = Query(None, max_length=200),
                      limit: int = Query(20, ge=1, le=100)) -> OrderPage:
    """The customer's orders with their items, newest first (the customer, agents, supervisors, and
    integrations with the ``orders:read`` scope, such as an IVR telling a caller where an order is)."""
    identity.authorize(ALL_ROLES, scope="orders:read", customer_id=customer_id)
    when = func.coalesce(orders.c.paid_at, orders.c.placed_at)
    query = (select(orders, when.label("sort_at")).where(orders.c.customer_id == customer_id)
             .order_by(when.desc(), orders.c.order_id.desc()).limit(limit + 1))
    if status is not None:
        query = query.where(orders.c.status == status)
    if cursor is not None:
        at, key = _decode_cursor(cursor)
        query = query.where(tuple_(when, orders.c.order_id) < tuple_(at, key))
    rows = (await db.execute(query)).all()
    items = [OrderRead(
        order_id=r.order_id, status=r.status, currency=r.currency.strip(), total_amount=format_amount(r.total_amount),
        refunded_amount=format_amount(r.refunded_amount), channel=r.channel,
        items=[OrderItemRead(**i) for i in _json(r.items) or []], placed_at=r.placed_at, paid_at=r.paid_at,
        completed_at=r.completed_at, cancelled_at=r.cancelled_at) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return OrderPage(items=items, next_cursor=_encode_cursor(last.sort_at, last.order_id) if last else None)


@router.get("/{customer_id}/timeline", response_model=TimelinePage)
async def get_timeline(db: DbReadConnection, identity: CurrentIdentity, customer_id: str = CustomerIdPath,
                       kind: str | None = Query(None, max_length=100, pattern=r"^[a-z_.]+$",
                                                description="`order`, `interaction`, or a full kind such as "
                                                            "`interaction.product_view`."),
                       since: datetime | None = None, until: datetime | None = None,
                       cursor: str | None = Query(None, max_length=200),
                       limit: int = Query(50, ge=1, le=200)) -> TimelinePage:
    """Everything that happened to a customer, newest first: interactions and orders (and, as the
    other services emit them, tickets, points and churn warnings). The call-centre agent's view."""
    identity.authorize(STAFF)
    query = (select(timeline).where(timeline.c.customer_id == customer_id)
             .order_by(timeline.c.occurred_at.desc(), timeline.c.id.desc()).limit(limit + 1))
    if kind is not None:
        query = query.where((timeline.c.kind == kind) | timeline.c.kind.startswith(kind.rstrip(".") + ".",
                                                                                     autoescape=True))
    if since is not None:
        query = query.where(timeline.c.occurred_at >= since)
    if until is not None:
        query = query.where(timeline.c.occurred_at < until)
    if cursor is not None:
        at, key = _decode_cursor(cursor)
        if not key.isdigit() or int(key) > BIGINT_MAX:
            raise Problem(422, "Invalid request", "cursor is not one this API gave out")
        query = query.where(tuple_(timeline.c.occurred_at, timeline.c.id) < tuple_(at, int(key)))
    rows = (await db.execute(query)).all()
    items = [TimelineEntryRead(occurred_at=r.occurred_at, kind=r.kind, channel=r.channel, details=_json(r.details),
                               event_id=r.event_id) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return TimelinePage(items=items, next_cursor=_encode_cursor(last.occurred_at, last.id) if last else None)


@router.get("/{customer_id}/export", response_model=ProfileExport,
            responses={404: {**_PROBLEM, "description": "Unknown customer"},
                       422: {**_PROBLEM, "description": "No X-Access-Reason"}})
async def export_profile(request: Request, db: DbConnection, identity: CurrentIdentity,
                         customer_id: str = CustomerIdPath,
                         reason: str | None = Header(None, alias="X-Access-Reason", min_length=3, max_length=200)
                         ) -> ProfileExport:
    """All data about a customer as one JSON document (data portability): for the customer
    themselves, or a supervisor with an ``X-Access-Reason``. Journaled as a privacy request.

    The customer's own export leaves out staff's internal notes, the PII access log and the churn
    warnings on the timeline (``notes`` and ``pii_access_log`` are null), and its profile is the
    customer's own view; a supervisor's export has everything."""
    identity.authorize({Role.CUSTOMER, Role.SUPERVISOR}, customer_id=customer_id)
    own = identity.role is Role.CUSTOMER
    if not own and reason is None:
        raise Problem(422, "Invalid request", "an export needs an X-Access-Reason header")
    profile = await _full_profile(db, _vault(request), customer_id)
    if profile is None:
        raise NotFound("customer", customer_id)
    # Journaled first, so that the export shows its own request.
    await record_privacy_request(db, customer_id=customer_id, kind="export", actor=identity.subject,
                                 role=str(identity.role), reason=reason or "the customer's own request")
    if not own:
        await record_pii_access(db, actor=identity.subject, role=str(identity.role), customer_id=customer_id,
                                fields=[f for f in PII_FIELDS if profile[f] is not None], reason=reason,
                                request_id=current_request_id.get())
    related = await export_related(db, customer_id)
    await db.commit()
    for rows in related.values():
        for row in rows:
            for key, value in row.items():
                if isinstance(value, str) and key in ("items", "details"):
                    row[key] = orjson.loads(value)
    read = _read_model(profile, clear=True)
    if own:
        read = _customer_view(read)
        related = {**related, "timeline": customer_timeline(related["timeline"]),
                   **dict.fromkeys(HIDDEN_EXPORT_SECTIONS)}
    return ProfileExport(exported_at=datetime.now(UTC), profile=read, **related)


@router.post("/{customer_id}/erasure", status_code=200, response_model=ErasureRead,
             responses={404: {**_PROBLEM, "description": "Unknown customer"},
                        409: {**_PROBLEM, "description": "A merged duplicate (erase its survivor), or the same key "
                                                         "still in flight"}})
async def erase_profile(body: ErasureCreate, request: Request, db: DbConnection, identity: CurrentIdentity,
                        key: IdempotencyKey, customer_id: str = CustomerIdPath) -> ErasureRead:
    """Erase a customer's personal data (supervisors): e-mail, phone, name, address, birthday,
    gender, city, tags, external ids, notes, interaction details and the reasons of points
    movements go; marketing consents are withdrawn; the id, orders and statistics stay,
    anonymised. The profiles merged into this one are erased with it; a merged duplicate itself
    is refused (409, naming the survivor). PII and consents sent for the customer later are
    dropped. ``crm.profile.customer.erased`` tells the other services to erase theirs, once.
    Requires ``Idempotency-Key``; erasing twice is harmless."""
    identity.authorize(SUPERVISOR)
    replay = await idempotency.begin(db, request, identity, key)
    if replay is not None:
        return replay
    group = await lock_erasure_group(db, customer_id)
    erased_at = group.erased_at or datetime.now(UTC)
    ids = [group.survivor, *group.merged]
    await erase_profiles(db, ids, erased_at)
    await refresh_segments(db, _settings(request).rfm_currency, ids)  # erased customers are in no segment
    await record_privacy_request(db, customer_id=customer_id, kind="erasure", actor=identity.subject,
                                 role=str(identity.role), reason=body.reason)
    if group.newly_erased:
        await add_to_outbox(db, [customer_erased(customer_id=group.survivor, merged_customer_ids=group.merged,
                                                 erased_at=erased_at, traceparent=current_traceparent.get())])
    answer = ErasureRead(customer_id=customer_id, erased_at=erased_at, erased_by=identity.subject,
                         merged_customer_ids=group.merged)
    await idempotency.finish(db, request, identity, key, 200, answer)
    await db.commit()
    return answer


@router.get("/{customer_id}/duplicates", response_model=list[DuplicateRead])
async def list_duplicates(db: DbReadConnection, identity: CurrentIdentity,
                          customer_id: str = CustomerIdPath) -> list[DuplicateRead]:
    """Other profiles with the same normalised e-mail or phone (agents and supervisors): merge
    candidates. Junk values are never identifiers, so they never make two profiles look alike."""
    identity.authorize(STAFF)
    return [DuplicateRead(customer_id=row.customer_id,
                          shared=[k for k, same in (("email", row.same_email), ("phone", row.same_phone)) if same])
            for row in await find_duplicates(db, customer_id)]


@router.post("/{customer_id}/merge", response_model=MergeRead,
             responses={404: _PROBLEM, 409: {**_PROBLEM, "description": "Already merged, or key in flight"},
                        422: {**_PROBLEM, "description": "Nothing verified in common, erased, or itself"}})
async def merge_profile(body: MergeCreate, request: Request, db: DbConnection, identity: CurrentIdentity,
                        key: IdempotencyKey, customer_id: str = CustomerIdPath) -> MergeRead:
    """Merge a duplicate into this profile (supervisors, after verifying the shared identifier with
    the customer). Orders, timeline, notes, consent history, spend and categories move here; fields
    this profile lacks are taken from the duplicate; its consents stay as they are. The merge is
    journaled for review, later events about the duplicate's id apply here, and
    ``crm.profile.customer.merged`` tells the other services."""
    identity.authorize(SUPERVISOR)
    replay = await idempotency.begin(db, request, identity, key)
    if replay is not None:
        return replay
    try:
        survivor = await merge_profiles(db, survivor=customer_id, merged=body.duplicate_id,
                                        identifier=body.identifier, reason=body.reason, actor=identity.subject)
    except MergeRefused as refused:
        title = {404: "Not found", 409: "Conflict", 422: "Unprocessable Content"}[refused.status]
        raise Problem(refused.status, title, str(refused)) from None
    merged_at = datetime.now(UTC)
    await add_to_outbox(db, [customer_merged(customer_id=customer_id, merged_customer_id=body.duplicate_id,
                                             merged_at=merged_at, traceparent=current_traceparent.get())])
    await emit_customer_updated(db, [survivor], changed=["merge"], traceparents={})
    await refresh_segments(db, _settings(request).rfm_currency, [customer_id])
    answer = MergeRead(customer_id=customer_id, merged_customer_id=body.duplicate_id,
                       order_count=survivor.order_count, merged_at=merged_at)
    await idempotency.finish(db, request, identity, key, 200, answer)
    await db.commit()
    return answer


@router.post("/{customer_id}/unmerge", response_model=UnmergeRead,
             responses={404: {**_PROBLEM, "description": "No such merge in force"},
                        409: {**_PROBLEM, "description": "This profile was merged since, or key in flight"},
                        422: {**_PROBLEM, "description": "Erased, or merged before unmerging existed"}})
async def unmerge_profile(body: UnmergeCreate, request: Request, db: DbConnection, identity: CurrentIdentity,
                          key: IdempotencyKey, customer_id: str = CustomerIdPath) -> UnmergeRead:
    """Undo the merge of a duplicate into this profile (supervisors, with a reason): the orders,
    timeline entries, notes, consent history and external ids the merge moved go back, the fields
    this profile took from the duplicate go back, and both profiles' statistics are counted again.
    What reached this profile after the merge stays here. Journaled next to the merge;
    ``crm.profile.customer.unmerged`` tells the other services to move back what they moved.
    Requires ``Idempotency-Key``."""
    identity.authorize(SUPERVISOR)
    replay = await idempotency.begin(db, request, identity, key)
    if replay is not None:
        return replay
    unmerged_at = datetime.now(UTC)
    try:
        both = await unmerge_profiles(db, survivor=customer_id, merged=body.duplicate_id, reason=body.reason,
                                      actor=identity.subject, at=unmerged_at)
    except MergeRefused as refused:
        title = {404: "Not found", 409: "Conflict", 422: "Unprocessable Content"}[refused.status]
        raise Problem(refused.status, title, str(refused)) from None
    await add_to_outbox(db, [customer_unmerged(customer_id=customer_id, unmerged_customer_id=body.duplicate_id,
                                               unmerged_at=unmerged_at, traceparent=current_traceparent.get())])
    await emit_customer_updated(db, both, changed=["unmerge"], traceparents={})
    await refresh_segments(db, _settings(request).rfm_currency, [customer_id, body.duplicate_id])
    counts = {row.customer_id: row.order_count for row in both}
    answer = UnmergeRead(customer_id=customer_id, unmerged_customer_id=body.duplicate_id,
                         order_count=counts[customer_id], unmerged_order_count=counts[body.duplicate_id],
                         unmerged_at=unmerged_at, unmerged_by=identity.subject)
    await idempotency.finish(db, request, identity, key, 200, answer)
    await db.commit()
    return answer


@router.post("/{customer_id}/notes", status_code=201, response_model=NoteRead,
             responses={404: {"content": {PROBLEM_JSON: {}}, "description": "Unknown customer"},
                        409: {"content": {PROBLEM_JSON: {}},
                              "description": "Same key still in flight, or the customer was erased"},
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
    await refuse_if_erased(db, customer_id)
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


@audit_router.get("/pii-access", response_model=PiiAccessPage)
async def list_pii_access(db: DbReadConnection, identity: CurrentIdentity,
                          customer_id: str | None = Query(None, max_length=100),
                          actor: str | None = Query(None, max_length=200),
                          cursor: int | None = Query(None, ge=1, le=2**63 - 1,
                                                     description="`next_cursor` of the previous page"),
                          limit: int = Query(50, ge=1, le=200)) -> PiiAccessPage:
    """Who saw which customer's PII in clear, when and why, newest first (supervisors)."""
    identity.authorize(SUPERVISOR)
    query = select(pii_access_log).order_by(pii_access_log.c.id.desc()).limit(limit + 1)
    if customer_id is not None:
        query = query.where(pii_access_log.c.customer_id == customer_id)
    if actor is not None:
        query = query.where(pii_access_log.c.actor == actor)
    if cursor is not None:
        query = query.where(pii_access_log.c.id < cursor)
    rows = (await db.execute(query)).all()
    return PiiAccessPage(items=[PiiAccessRead(**row._mapping) for row in rows[:limit]],
                         next_cursor=str(rows[limit - 1].id) if len(rows) > limit else None)


def _rule(raw: dict) -> Rule:
    try:
        rule = TypeAdapter(Rule).validate_python(raw)
        CompiledRule(rule)  # type checks between fields and values
    except (ValidationError, ValueError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise Problem(422, "Invalid request", f"the rule is not valid: {detail}",
                      type_=PROBLEM_BASE + "invalid-rule") from None
    return rule


def _segment_read(row, members: int) -> SegmentRead:
    return SegmentRead(segment_id=row.segment_id, name=row.name, description=row.description,
                       rule=_json(row.rule), members=members, created_by=row.created_by, updated_at=row.updated_at)


@segments_router.get("", response_model=list[SegmentRead])
async def list_segments(db: DbReadConnection, identity: CurrentIdentity) -> list[SegmentRead]:
    """The RFM segments (``rfm:<name>``) and the custom segments, with their member counts."""
    identity.authorize(STAFF)
    sizes = await segment_sizes(db)
    rfm = [SegmentRead(segment_id=f"rfm:{name}", name=name.replace("_", " ").title(), rule=None,
                       members=sizes.get(f"rfm:{name}", 0)) for name in RFM_SEGMENTS]
    rows = (await db.execute(select(segments).order_by(segments.c.segment_id))).all()
    return rfm + [_segment_read(row, sizes.get(row.segment_id, 0)) for row in rows]


@segments_router.post("", status_code=201, response_model=SegmentRead,
                      responses={409: {**_PROBLEM, "description": "The id is taken"},
                                 422: {**_PROBLEM, "description": "Invalid rule"}})
async def create_segment(body: SegmentCreate, request: Request, db: DbConnection, identity: CurrentIdentity,
                         key: IdempotencyKey) -> SegmentRead:
    """Define a custom segment (supervisors). Its members are computed at once and kept current
    as events arrive; each change emits ``crm.profile.segment.entered`` / ``exited``."""
    identity.authorize(SUPERVISOR)
    _rule(body.rule)
    replay = await idempotency.begin(db, request, identity, key)
    if replay is not None:
        return replay
    if body.segment_id.startswith("rfm"):
        raise Problem(422, "Invalid request", "segment ids starting with rfm are reserved")
    inserted = await db.execute(pg_insert(segments).values(
        segment_id=body.segment_id, name=body.name, description=body.description, rule=body.rule,
        created_by=identity.subject).on_conflict_do_nothing().returning(segments.c.segment_id))
    if inserted.first() is None:
        raise Problem(409, "Conflict", f"segment {body.segment_id!r} exists; PUT changes it")
    await refresh_segments(db, _settings(request).rfm_currency, segment_id=body.segment_id)
    row = (await db.execute(select(segments).where(segments.c.segment_id == body.segment_id))).first()
    answer = _segment_read(row, (await segment_sizes(db)).get(body.segment_id, 0))
    await idempotency.finish(db, request, identity, key, 201, answer)
    await db.commit()
    return answer


@segments_router.post("/refresh", response_model=RefreshRead)
async def refresh_now(request: Request, identity: CurrentIdentity) -> RefreshRead:
    """Recompute RFM scores and every custom segment for the whole base now (supervisors); the
    same job runs every ``SEGMENT_REFRESH_INTERVAL_S``. 409 while another refresh runs."""
    identity.authorize(SUPERVISOR)
    resources = request.app.state.resources
    result = await run_refresh(request.app.state.runtime.engine, resources.settings.rfm_currency, resources.metrics)
    if result is None:
        raise Problem(409, "Conflict", "a refresh is running; retry in a moment")
    return RefreshRead(scored=result[0], membership_changes=result[1])


@segments_router.get("/{segment_id}", response_model=SegmentRead, responses={404: _PROBLEM})
async def get_segment(db: DbReadConnection, identity: CurrentIdentity,
                      segment_id: str = Path(max_length=100)) -> SegmentRead:
    identity.authorize(STAFF)
    sizes = await segment_sizes(db)
    if segment_id.startswith("rfm:") and segment_id[4:] in RFM_SEGMENTS:
        return SegmentRead(segment_id=segment_id, name=segment_id[4:].replace("_", " ").title(), rule=None,
                           members=sizes.get(segment_id, 0))
    row = (await db.execute(select(segments).where(segments.c.segment_id == segment_id))).first()
    if row is None:
        raise NotFound("segment", segment_id)
    return _segment_read(row, sizes.get(segment_id, 0))


@segments_router.put("/{segment_id}", response_model=SegmentRead, responses={404: _PROBLEM, 422: _PROBLEM})
async def update_segment(body: SegmentUpdate, request: Request, db: DbConnection, identity: CurrentIdentity,
                         segment_id: str = Path(max_length=100)) -> SegmentRead:
    """Change a custom segment's rule (supervisors); members are recomputed at once."""
    identity.authorize(SUPERVISOR)
    _rule(body.rule)
    updated = await db.execute(update(segments).where(segments.c.segment_id == segment_id)
                               .values(name=body.name, description=body.description, rule=body.rule,
                                       updated_at=func.now()).returning(segments.c.segment_id))
    if updated.first() is None:
        raise NotFound("segment", segment_id)
    await refresh_segments(db, _settings(request).rfm_currency, segment_id=segment_id)
    row = (await db.execute(select(segments).where(segments.c.segment_id == segment_id))).first()
    answer = _segment_read(row, (await segment_sizes(db)).get(segment_id, 0))
    await db.commit()
    return answer


@segments_router.delete("/{segment_id}", status_code=204, responses={404: _PROBLEM})
async def delete_segment(db: DbConnection, identity: CurrentIdentity,
                         segment_id: str = Path(max_length=100)) -> Response:
    """Remove a custom segment and its memberships (supervisors). No exit events are sent."""
    identity.authorize(SUPERVISOR)
    deleted = await db.execute(delete(segments).where(segments.c.segment_id == segment_id)
                               .returning(segments.c.segment_id))
    if deleted.first() is None:
        raise NotFound("segment", segment_id)
    await db.commit()
    return Response(status_code=204)


@segments_router.get("/{segment_id}/members", response_model=SegmentMemberPage)
async def list_members(db: DbReadConnection, identity: CurrentIdentity, segment_id: str = Path(max_length=100),
                       cursor: str | None = Query(None, max_length=100),
                       limit: int = Query(100, ge=1, le=1000)) -> SegmentMemberPage:
    """The customers in a segment (RFM or custom), in id order, paged with ``cursor``."""
    identity.authorize(STAFF)
    after = cursor or ""
    if segment_id.startswith("rfm:"):
        query = (select(customers.c.customer_id, customers.c.rfm_scored_at.label("entered_at"))
                 .where(customers.c.rfm_segment == segment_id[4:], customers.c.erased_at.is_(None),
                        customers.c.customer_id > after).order_by(customers.c.customer_id).limit(limit + 1))
    else:
        query = (select(segment_members.c.customer_id, segment_members.c.entered_at)
                 .where(segment_members.c.segment_id == segment_id, segment_members.c.customer_id > after)
                 .order_by(segment_members.c.customer_id).limit(limit + 1))
    rows = (await db.execute(query)).all()
    return SegmentMemberPage(items=[SegmentMember(customer_id=r.customer_id, entered_at=r.entered_at)
                                    for r in rows[:limit]],
                             next_cursor=rows[limit - 1].customer_id if len(rows) > limit else None)
