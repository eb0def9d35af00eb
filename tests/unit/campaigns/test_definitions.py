"""The request models of audiences, templates and campaigns: what a definition may say (exactly the
audience filters the SQL knows, a schedule of the campaign's kind, known actions, bounded rules),
and the cross-filter rules of domain/audience.py. Pure: no service, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from crm_campaigns.domain.audience import AudienceInvalid, check_audience
from crm_campaigns.repository.audiences import audience_where
from crm_campaigns.schemas.audiences import AudienceDefinition
from crm_campaigns.schemas.campaigns import CampaignCreate
from crm_campaigns.schemas.templates import TemplateCreate
from pydantic import ValidationError

ALL_FILTERS = {
    "segments_any": ["vip"], "segments_all": ["a"], "segments_none": ["b"], "rfm_segments": ["champions"],
    "tiers": ["gold"], "churn_levels": ["high"], "churn_score_min": 0.2, "churn_score_max": 0.9,
    "value_min": "10", "value_max": "99.5", "orders_min": 1, "orders_max": 9, "last_order_within_days": 90,
    "no_order_for_days": 30, "categories_any": ["shoes"], "birthday_month": 12, "points_min": 100,
    "locales": ["zh-CN"],
}


def test_the_definition_model_knows_exactly_the_filters_of_the_audience_sql():
    stored = AudienceDefinition.model_validate(ALL_FILTERS).stored()
    assert set(stored) == set(AudienceDefinition.model_fields) == set(ALL_FILTERS)
    where, _ = audience_where(stored, "email", datetime.now(UTC))
    assert where.count(" AND ") == len(ALL_FILTERS)  # every filter became a clause (and the consent one)


@pytest.mark.parametrize("definition", [
    {"segment_any": ["vip"]}, {"rfm_segments": ["whales"]}, {"churn_levels": ["extreme"]}, {"birthday_month": 0},
    {"churn_score_min": 1.5}, {"value_min": "-1"}, {"orders_min": -1}, {"last_order_within_days": 0},
    {"locales": ["fr"]}, {"tiers": "gold"}, {"segments_any": [""]}, {"value_min": "1.00001"},
])
def test_definitions_with_unknown_filters_or_values_out_of_bounds_are_refused(definition):
    with pytest.raises(ValidationError):
        AudienceDefinition.model_validate(definition)


@pytest.mark.parametrize(("definition", "reason"), [
    ({"orders_min": 5, "orders_max": 2}, "orders_min is above orders_max"),
    ({"value_min": 10, "value_max": 5}, "value_min is above value_max"),
    ({"segments_all": ["a", "b"], "segments_none": ["b"]}, "both required and excluded: b"),
    ({"last_order_within_days": 30, "no_order_for_days": 60}, "no one can match both"),
])
def test_contradicting_filters_are_refused_with_the_reason(definition, reason):
    with pytest.raises(AudienceInvalid, match=reason):
        check_audience(definition)
    with pytest.raises(ValidationError, match=reason):
        AudienceDefinition.model_validate(definition)


def test_a_range_that_fits_and_an_empty_definition_are_accepted():
    check_audience({"orders_min": 2, "orders_max": 2, "last_order_within_days": 60, "no_order_for_days": 30})
    assert AudienceDefinition.model_validate({}).stored() == {}


def _campaign(**changes):
    body = {"name": "c", "kind": "one_shot", "audience_id": "all", "template_id": "t", "schedule": {},
            "actions": [{"kind": "message"}], **changes}
    return CampaignCreate.model_validate(body)


def test_each_kind_takes_its_own_schedule_with_defaults():
    assert _campaign().stored()["schedule"] == {}
    recurring = _campaign(kind="recurring", schedule={"occasion": "member_day", "day_of_month": 8})
    assert recurring.schedule == {"occasion": "member_day", "day_of_month": 8, "send_local_time": "09:00"}
    triggered = _campaign(kind="triggered", schedule={"trigger": "tier_changed", "match": ["gold"]})
    assert triggered.schedule == {"trigger": "tier_changed", "match": ["gold"], "wait_s": 0}
    assert _campaign().rules.model_dump(exclude_none=True) == {"control_share": 0.1, "conversion_days": 7}


@pytest.mark.parametrize(("changes", "reason"), [
    ({"kind": "recurring", "schedule": {}}, "occasion"),
    ({"kind": "recurring", "schedule": {"occasion": "holiday"}}, "calendars are required"),
    ({"kind": "recurring", "schedule": {"occasion": "birthday", "send_local_time": "25:00"}}, "send_local_time"),
    ({"kind": "triggered", "schedule": {"trigger": "churn_high", "match": ["x"]}}, "no attribute to match"),
    ({"kind": "triggered", "schedule": {"trigger": "order_completed", "wait_s": 31 * 86400}}, "wait_s"),
    ({"schedule": {"trigger": "order_completed"}}, "Extra inputs"),            # a one-shot's schedule
    ({"schedule": {"send_at": "2026-05-01T09:00:00"}}, "timezone"),
    ({"actions": [{"kind": "coupon"}]}, "pool_id"),
    ({"actions": [{"kind": "bonus_points", "points": 0}]}, "points"),
    ({"actions": [{"kind": "teleport"}]}, "teleport"),
    ({"rules": {"control_share": 0.51}}, "control_share"),
    ({"rules": {"quiet_hours": {"start": "21:00", "end": "21:00"}}}, "different times"),
    ({"rules": {"frequency_cap": {"count": 0, "days": 7}}}, "count"),
    ({"rules": {"conversion_days": 0}}, "conversion_days"),
    ({"surprise": True}, "Extra inputs"),
])
def test_bad_campaign_parts_are_refused(changes, reason):
    with pytest.raises(ValidationError, match=reason):
        _campaign(**changes)


def test_templates_name_known_locales_and_parts_only():
    ok = TemplateCreate.model_validate({"name": "t", "channel": "sms", "contents": {"zh-CN": {"text": "您好"}}})
    assert ok.contents["zh-CN"].text == "您好"
    for bad in ({"name": "t", "channel": "sms", "contents": {}},
                {"name": "t", "channel": "sms", "contents": {"de": {"text": "x"}}},
                {"name": "t", "channel": "pigeon", "contents": {"en": {"text": "x"}}},
                {"name": "t", "channel": "sms", "contents": {"en": {"footer": "x"}}},
                {"name": "t", "channel": "sms", "template_id": "Not A Slug", "contents": {"en": {"text": "x"}}}):
        with pytest.raises(ValidationError):
            TemplateCreate.model_validate(bad)
