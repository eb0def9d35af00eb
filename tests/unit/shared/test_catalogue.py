"""The event catalogue: the public contract's types, topics and data validation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from crm_shared.events.catalogue import CATALOGUE, OrderData, UnknownEventType, data_model_for, topic_for
from pydantic import ValidationError

ORDER = {"order_id": "o-1", "customer_id": "c-1", "currency": "CNY", "total_amount": "199.90",
         "items": [{"sku": "S", "category": "tea", "quantity": 2, "unit_price": "99.95"}],
         "channel": "app", "occurred_at": "2026-11-02T20:15:00+08:00"}


def test_every_commerce_type_of_the_brief_is_in_the_catalogue_on_its_topic():
    expected = {
        "commerce.customer.registered": "commerce.customers", "commerce.customer.updated": "commerce.customers",
        "commerce.order.placed": "commerce.orders", "commerce.order.paid": "commerce.orders",
        "commerce.order.completed": "commerce.orders", "commerce.order.cancelled": "commerce.orders",
        "commerce.order.refunded": "commerce.orders", "commerce.interaction.recorded": "commerce.interactions",
    }
    for event_type, topic in expected.items():
        assert topic_for(event_type) == topic
        assert CATALOGUE[event_type].dataschema.endswith(f"{event_type}/v1.json")


def test_money_is_a_decimal_string_never_a_float():
    order = OrderData.model_validate(ORDER)
    assert order.total_amount == Decimal("199.90")
    with pytest.raises(ValidationError, match="decimal string"):
        OrderData.model_validate({**ORDER, "total_amount": 199.9})
    with pytest.raises(ValidationError):
        OrderData.model_validate({**ORDER, "total_amount": "-1"})
    with pytest.raises(ValidationError):
        OrderData.model_validate({**ORDER, "total_amount": "NaN"})


@pytest.mark.parametrize(("field", "value"), [
    ("currency", "cny"), ("currency", "YUAN"), ("occurred_at", "2026-11-02T20:15:00"), ("customer_id", ""),
])
def test_invalid_order_fields_are_refused(field, value):
    with pytest.raises(ValidationError):
        OrderData.model_validate({**ORDER, field: value})


def test_refunds_carry_the_refunded_amount():
    refunded = data_model_for("commerce.order.refunded").model_validate(
        {**ORDER, "refund_amount": "99.95", "refunded_items": [ORDER["items"][0]]})
    assert refunded.refund_amount == Decimal("99.95")
    with pytest.raises(ValidationError):
        data_model_for("commerce.order.refunded").model_validate(ORDER)


def test_interactions_have_a_known_kind():
    model = data_model_for("commerce.interaction.recorded")
    ok = model.model_validate({"customer_id": "c", "kind": "product_view", "occurred_at": "2026-11-02T20:15:00Z",
                               "attributes": {"sku": "S"}})
    assert ok.kind == "product_view"
    with pytest.raises(ValidationError):
        model.model_validate({"customer_id": "c", "kind": "teleport", "occurred_at": "2026-11-02T20:15:00Z"})


def test_unknown_types_are_named():
    with pytest.raises(UnknownEventType, match=r"commerce\.order\.teleported"):
        data_model_for("commerce.order.teleported")
