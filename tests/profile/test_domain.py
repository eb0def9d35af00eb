from decimal import Decimal

import pytest
from crm_profile.domain.events import customer_updated, format_amount
from crm_profile.domain.identity import normalise_email, normalise_phone


@pytest.mark.parametrize(("raw", "expected"), [
    ("  Li.Wei@Example.COM ", "li.wei@example.com"), ("", None), ("   ", None), (None, None)])
def test_emails_are_compared_lower_case(raw, expected):
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("+86 138-0013 8000", "+8613800138000"), ("(010) 1234 5678", "01012345678"), ("86+138", "+86138"),
    ("n/a", None), (None, None)])
def test_phones_keep_digits_and_a_leading_plus(raw, expected):
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(("amount", "text"), [
    (Decimal("1299.0000"), "1299.00"), (Decimal("0.5"), "0.50"), (Decimal("12.3450"), "12.345"), (Decimal(0), "0.00")])
def test_money_is_formatted_as_a_decimal_string_with_cents(amount, text):
    assert format_amount(amount) == text


def test_the_update_event_carries_no_pii_and_continues_the_trace():
    event = customer_updated(customer_id="c-1", changed=["orders"], order_count=2,
                             total_spent={"CNY": Decimal("10.5")}, first_order_at=None, last_order_at=None,
                             cause_traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    assert event.subject == "c-1" and event.type == "crm.profile.customer.updated"
    assert set(event.data) == {"customer_id", "changed", "order_count", "total_spent", "first_order_at",
                               "last_order_at"}
    assert event.data["total_spent"] == {"CNY": "10.50"}
    assert event.traceparent.startswith("00-" + "a" * 32)
