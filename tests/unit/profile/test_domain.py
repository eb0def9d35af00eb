from decimal import Decimal

import pytest
from crm_profile.domain.events import customer_updated, format_amount
from crm_profile.domain.identity import is_junk, name_prefixes, normalise_email, normalise_phone
from crm_profile.domain.pii import PiiVault, mask_email, mask_name, mask_phone
from crm_profile.domain.segments import RFM_RULES, RFM_SEGMENTS, rfm_segment


@pytest.mark.parametrize(("raw", "expected"), [
    ("  Li.Wei@Example.COM ", "li.wei@example.com"), ("", None), ("   ", None), (None, None), ("null", None),
    ("test@test.com", None)])
def test_emails_are_compared_lower_case_and_junk_means_unknown(raw, expected):
    assert normalise_email(raw) == expected


@pytest.mark.parametrize("raw", [
    "+86 138 0013 8000", "13800138000", "(+86) 138-0013-8000", "0086 13800138000", "138 0013 8000",
    "+86-138-0013-8000", "８６１３８００１３８０００"[2:]])
def test_a_phone_written_any_common_way_is_one_e164_number(raw):
    assert normalise_phone(raw) == "+8613800138000"


@pytest.mark.parametrize(("raw", "expected"), [
    ("+44 20 7946 0958", "+442079460958"), ("+1 (415) 555-0132", "+14155550132"), ("010 1234 5678", "+861012345678"),
    ("12", None), ("n/a", None), (None, None), ("0000000", None), ("+86 130 0000 0000", None), ("phone", None)])
def test_phones_of_other_countries_and_junk(raw, expected):
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize("value", ["", "NULL", " n/a ", "0000000", "111-1111", "unknown"])
def test_junk_values_are_never_identifiers(value):
    assert is_junk(value)


def test_name_prefixes_cover_the_whole_name_and_each_word():
    assert {"l", "li", "li w", "li wei", "w", "wei"} <= name_prefixes("Li  WEI")
    assert name_prefixes("李伟") == {"李", "李伟"}
    assert name_prefixes(None) == set()


def test_pii_is_sealed_per_field_and_indexed_deterministically():
    vault = PiiVault(b"k" * 32)
    sealed = vault.seal("email", "li.wei@example.com")
    assert b"li.wei" not in sealed and vault.open("email", sealed) == "li.wei@example.com"
    assert vault.seal("email", "li.wei@example.com") != sealed  # a fresh nonce every time
    with pytest.raises(Exception):  # noqa: B017 - the tag check fails: bound to its field
        vault.open("phone", sealed)
    assert vault.index("email", "a@b.cn") == vault.index("email", "a@b.cn") != vault.index("phone", "a@b.cn")
    assert PiiVault(b"x" * 32).index("email", "a@b.cn") != vault.index("email", "a@b.cn")
    with pytest.raises(ValueError):
        PiiVault(b"short")


def test_masks_keep_just_enough_to_recognise_a_customer():
    assert mask_email("li.wei@example.com") == "l*****@example.com"
    assert mask_phone("+8613800138000") == "+86*******8000"
    assert mask_name("Li Wei") == "L* W**" and mask_name("李伟") == "李*"


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


def _rfm_segment_as_first_written(r: int, f: int, m: int) -> str:
    """The rules as the service first wrote them, before they became a table shared with SQL."""
    if r <= 2 and f >= 4 and m >= 4:
        return "cannot_lose"
    if r >= 4 and f >= 4 and m >= 4:
        return "champions"
    if r >= 3 and f >= 3:
        return "loyal"
    if r >= 4 and f == 1:
        return "new"
    if r >= 3:
        return "potential"
    if f >= 3:
        return "at_risk"
    return "hibernating" if r == 2 else "lost"


def test_every_rfm_score_has_the_name_it_always_had():
    scores = [(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)]
    assert {s: rfm_segment(*s) for s in scores} == {s: _rfm_segment_as_first_written(*s) for s in scores}
    assert {rfm_segment(*s) for s in scores} == set(RFM_SEGMENTS)
    assert [rule.name for rule in RFM_RULES][-1] == "lost" and RFM_RULES[-1].matches(1, 1, 1)
