"""Builders of realistic catalogue events for tests and benchmarks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from crm_shared.events.envelope import CloudEvent
from crm_shared.tracing import new_traceparent

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def order_paid(customer_id: str, *, order_id: str | None = None, amount: str | Decimal = "100.00",
               currency: str = "CNY", at: datetime | None = None, event_id: str | None = None) -> CloudEvent:
    order_id = order_id or f"o-{uuid.uuid4().hex[:12]}"
    at = at or T0
    return CloudEvent(
        id=event_id or str(uuid.uuid4()), source="shop/orders", type="commerce.order.paid", subject=customer_id,
        time=at, dataschema="https://crm.example/schemas/commerce.order.paid/v1.json",
        traceparent=new_traceparent(),
        data={"order_id": order_id, "customer_id": customer_id, "currency": currency,
              "total_amount": str(amount), "channel": "app", "occurred_at": at.isoformat(),
              "items": [{"sku": "SKU-1", "category": "tea", "quantity": 1, "unit_price": str(amount)}]})


def customer_registered(customer_id: str, *, email: str | None = None, name: str = "Test Customer",
                        at: datetime | None = None) -> CloudEvent:
    at = at or T0 - timedelta(days=30)
    return CloudEvent(
        id=str(uuid.uuid4()), source="shop/accounts", type="commerce.customer.registered", subject=customer_id,
        time=at, dataschema="https://crm.example/schemas/commerce.customer.registered/v1.json",
        data={"customer_id": customer_id, "email": email or f"{customer_id}@Example.com",
              "phone": "+86 138 0013 8000", "name": name, "birthday": "1991-03-04", "gender": "female",
              "city": "Shanghai", "registered_at": at.isoformat(), "consents": {"email": True, "sms": False}})


def new_customer_id() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


def interaction(customer_id: str, *, kind: str = "product_view", at: datetime | None = None,
                event_id: str | None = None, attributes: dict | None = None) -> CloudEvent:
    at = at or T0
    return CloudEvent(
        id=event_id or str(uuid.uuid4()), source="shop/tracker", type="commerce.interaction.recorded",
        subject=customer_id, time=at,
        dataschema="https://crm.example/schemas/commerce.interaction.recorded/v1.json",
        data={"customer_id": customer_id, "kind": kind, "channel": "web", "occurred_at": at.isoformat(),
              "attributes": attributes if attributes is not None else {"sku": "SKU-1"}})


def order_event(type_: str, customer_id: str, order_id: str, *, amount: str = "100.00", currency: str = "CNY",
                items: list[dict] | None = None, at: datetime | None = None, refund_amount: str | None = None,
                refunded_items: list[dict] | None = None, event_id: str | None = None) -> CloudEvent:
    """Any ``commerce.order.*`` event (placed, paid, completed, cancelled, refunded)."""
    at = at or T0
    data = {"order_id": order_id, "customer_id": customer_id, "currency": currency, "total_amount": amount,
            "channel": "app", "occurred_at": at.isoformat(),
            "items": items if items is not None else [
                {"sku": "SKU-1", "category": "tea", "quantity": 1, "unit_price": amount}]}
    if refund_amount is not None:
        data["refund_amount"] = refund_amount
    if refunded_items is not None:
        data["refunded_items"] = refunded_items
    return CloudEvent(id=event_id or str(uuid.uuid4()), source="shop/orders", type=f"commerce.order.{type_}",
                      subject=customer_id, time=at, traceparent=new_traceparent(),
                      dataschema=f"https://crm.example/schemas/commerce.order.{type_}/v1.json", data=data)
