"""A synthetic shop whose churners are known, for the churn tests and bench/churn.py.

Every customer buys as a Poisson process at their own rate (a Gamma-distributed mean gap of about
a month) from their first order on. Half of them drop out at a random moment of their life; in the
weeks before, their browsing fades, and many file a complaint whose SLA is breached and rate the
service badly. The other half keep buying, browsing and now and then open an enquiry that is
answered in time. The truth (who dropped out, and when) comes with the history, so a test can
check that the model ranks the real churners first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from crm_shared.events.envelope import CloudEvent

from tests.harness.events import interaction, order_event


@dataclass
class Ticket:
    ticket_id: str
    customer_id: str
    kind: str
    opened_at: datetime
    breached_at: datetime | None
    resolved_at: datetime | None
    csat: int | None


@dataclass
class Shop:
    now: datetime
    # (customer_id, order_id, paid_at, amount as a decimal string)
    orders: list[tuple[str, str, datetime, str]] = field(default_factory=list)
    interactions: list[tuple[str, datetime]] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    dropped_at: dict[str, datetime | None] = field(default_factory=dict)  # None: never drops out

    def churned_by(self, moment: datetime) -> dict[str, bool]:
        """Who had dropped out by ``moment`` (among customers whose first order came before it)."""
        first = {}
        for customer_id, _, at, _ in self.orders:
            first[customer_id] = min(first.get(customer_id, at), at)
        return {c: (d is not None and d <= moment) for c, d in self.dropped_at.items()
                if c in first and first[c] < moment}

    def events(self) -> list[tuple[str, CloudEvent]]:
        """Everything as catalogue events (topic, event), in time order."""
        timed: list[tuple[datetime, str, CloudEvent]] = []
        for customer_id, order_id, at, amount in self.orders:
            timed.append((at, "commerce.orders", order_event("paid", customer_id, order_id, amount=amount, at=at)))
        for customer_id, at in self.interactions:
            timed.append((at, "commerce.interactions", interaction(customer_id, at=at)))
        for t in self.tickets:
            timed.append((t.opened_at, "crm.tickets", ticket_event("opened", t, t.opened_at)))
            if t.breached_at:
                timed.append((t.breached_at, "crm.tickets", sla_breached(t, t.breached_at)))
            if t.resolved_at:
                timed.append((t.resolved_at, "crm.tickets", ticket_event("resolved", t, t.resolved_at)))
                if t.csat is not None:
                    at = t.resolved_at + timedelta(hours=1)
                    timed.append((at, "crm.tickets", csat_submitted(t, at)))
        timed.sort(key=lambda item: item[0])
        return [(topic, event) for _, topic, event in timed]


def synthetic_shop(customers: int, *, now: datetime, seed: int = 7, history_days: int = 420,
                   activity_days: int = 300, browse_every_days: float = 5.0, prefix: str = "s") -> Shop:
    rng = np.random.default_rng(seed)
    shop = Shop(now=now)
    start = now - timedelta(days=history_days)
    activity_from = now - timedelta(days=activity_days)
    for n in range(customers):
        customer_id = f"{prefix}-{n:06d}"
        first_day = rng.uniform(0, history_days - 20)
        mean_gap = rng.gamma(4.0, 30.0 / 4.0)  # days between orders, about a month on average
        drops = rng.random() < 0.5
        drop_day = rng.uniform(first_day, history_days + 60) if drops else None
        end_day = min(drop_day, history_days) if drop_day is not None else history_days
        shop.dropped_at[customer_id] = start + timedelta(days=drop_day) if drop_day is not None else None
        day = first_day
        while day < end_day:
            amount = f"{rng.uniform(20, 400):.2f}"
            shop.orders.append((customer_id, f"o-{prefix}-{uuid.uuid4().hex[:12]}", start + timedelta(days=day),
                                amount))
            day += rng.exponential(mean_gap)
        # Browsing every few days while active; it fades over the 40 days before a drop-out.
        day = max(first_day, (activity_from - start).total_seconds() / 86_400)
        while day < end_day:
            fading = drop_day is not None and drop_day - day < 40
            if not fading or rng.random() < 0.2:
                shop.interactions.append((customer_id, start + timedelta(days=day)))
            day += rng.exponential(browse_every_days)
        if drop_day is not None and drop_day - 25 > first_day and rng.random() < 0.6 and drop_day - 25 < history_days:
            opened = start + timedelta(days=drop_day - 25)  # a bad experience shortly before leaving
            breached = opened + timedelta(days=2) if rng.random() < 0.75 else None
            shop.tickets.append(Ticket(f"t-{prefix}-{n:06d}", customer_id, "complaint", opened, breached,
                                       opened + timedelta(days=6), int(rng.integers(1, 4))))
        elif drop_day is None and rng.random() < 0.25:
            opened = start + timedelta(days=rng.uniform(first_day, history_days - 5))
            kind = "complaint" if rng.random() < 0.4 else "enquiry"
            breached = opened + timedelta(days=1) if rng.random() < 0.1 else None
            shop.tickets.append(Ticket(f"t-{prefix}-{n:06d}", customer_id, kind, opened, breached,
                                       opened + timedelta(hours=30), int(rng.integers(3, 6))))
    return shop


def _ticket_data(t: Ticket, at: datetime, status: str) -> dict:
    return {"customer_id": t.customer_id, "ticket_id": t.ticket_id, "kind": t.kind, "category": "delivery",
            "priority": "normal", "status": status, "occurred_at": at.isoformat()}


def ticket_event(verb: str, t: Ticket, at: datetime) -> CloudEvent:
    status = {"opened": "open", "resolved": "resolved", "closed": "closed", "reopened": "open"}[verb]
    return CloudEvent.new(type=f"crm.tickets.ticket.{verb}", source="crm/tickets", subject=t.customer_id,
                          data=_ticket_data(t, at, status), time=at)


def sla_breached(t: Ticket, at: datetime) -> CloudEvent:
    return CloudEvent.new(type="crm.tickets.ticket.sla_breached", source="crm/tickets", subject=t.customer_id,
                          data={"customer_id": t.customer_id, "ticket_id": t.ticket_id, "target": "resolution",
                                "due_at": at.isoformat(), "priority": "normal", "occurred_at": at.isoformat()},
                          time=at)


def csat_submitted(t: Ticket, at: datetime) -> CloudEvent:
    return CloudEvent.new(type="crm.tickets.csat.submitted", source="crm/tickets", subject=t.customer_id,
                          data={"customer_id": t.customer_id, "ticket_id": t.ticket_id, "score": t.csat,
                                "submitted_at": at.isoformat()}, time=at)


async def copy_into_churn_database(conn, shop: Shop, *, currency: str = "CNY") -> None:
    """Write the shop's history straight into a churn database's history tables (asyncpg ``conn``):
    what the service's handlers would have recorded from the same events, in seconds instead of
    minutes for a large shop."""
    from collections import Counter

    await conn.copy_records_to_table(
        "churn_orders", columns=["order_id", "customer_id", "paid_at", "currency", "total_amount"],
        records=[(order_id, customer_id, at, currency, float(amount))
                 for customer_id, order_id, at, amount in shop.orders])
    per_day = Counter((customer_id, at.date()) for customer_id, at in shop.interactions)
    await conn.copy_records_to_table("churn_activity", columns=["customer_id", "day", "events"],
                                     records=[(c, d, n) for (c, d), n in per_day.items()])
    await conn.copy_records_to_table(
        "churn_tickets", columns=["ticket_id", "customer_id", "kind", "opened_at", "resolved_at", "breached_at"],
        records=[(t.ticket_id, t.customer_id, t.kind, t.opened_at, t.resolved_at, t.breached_at) for t in shop.tickets])
    await conn.copy_records_to_table(
        "churn_csat", columns=["ticket_id", "customer_id", "score", "submitted_at"],
        records=[(t.ticket_id, t.customer_id, t.csat, t.resolved_at + timedelta(hours=1))
                 for t in shop.tickets if t.csat is not None and t.resolved_at is not None])
