"""The contract of issue 20: the campaign and consent events, and a customer's locale and time zone."""

from __future__ import annotations

import pytest
from crm_shared.events.catalogue import CATALOGUE, CRM_TOPICS, TOPIC_CAMPAIGNS, CustomerData, topic_for
from pydantic import ValidationError

AT = "2026-11-20T09:00:00+08:00"


def test_the_campaign_topic_is_a_crm_topic_and_carries_the_campaign_events():
    assert TOPIC_CAMPAIGNS == "crm.campaigns" and TOPIC_CAMPAIGNS in CRM_TOPICS
    assert topic_for("crm.campaigns.message.status_changed") == TOPIC_CAMPAIGNS
    assert topic_for("crm.campaigns.unsubscribed") == TOPIC_CAMPAIGNS
    assert topic_for("crm.profile.consent.changed") == "crm.profile"


@pytest.mark.parametrize("locale", ["en", "zh-CN", "zh-Hans-CN", "de-CH-1996", None])
def test_a_bcp47_locale_is_accepted(locale):
    assert CustomerData.model_validate({"customer_id": "c-1", "locale": locale}).locale == locale


@pytest.mark.parametrize("locale", ["", "e", "zh_CN", "en-", "x" * 36, "en US"])
def test_a_malformed_locale_is_refused(locale):
    with pytest.raises(ValidationError):
        CustomerData.model_validate({"customer_id": "c-1", "locale": locale})


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+8"])
def test_an_iana_time_zone_is_accepted(zone):
    assert CustomerData.model_validate({"customer_id": "c-1", "time_zone": zone}).time_zone == zone


@pytest.mark.parametrize("zone", ["", "Mars/Olympus", "../../etc/passwd", "/etc/localtime", "Asia/" + "x" * 64])
def test_an_unknown_or_path_like_time_zone_is_refused(zone):
    with pytest.raises(ValidationError):
        CustomerData.model_validate({"customer_id": "c-1", "time_zone": zone})


def test_customer_events_without_locale_or_time_zone_stay_valid():
    data = CustomerData.model_validate({"customer_id": "c-1", "email": "a@example.com"})
    assert data.locale is None and data.time_zone is None


def test_consent_changed_names_a_channel_and_a_known_source():
    model = CATALOGUE["crm.profile.consent.changed"].data_model
    ok = {"customer_id": "c-1", "channel": "sms", "granted": False, "source": "unsubscribe", "changed_at": AT}
    assert model.model_validate(ok).granted is False
    for bad in ({"channel": "push"}, {"source": "someone"}, {"changed_at": "2026-11-20T09:00:00"}):
        with pytest.raises(ValidationError):
            model.model_validate({**ok, **bad})


def test_message_statuses_and_unsubscribes_validate_their_enums():
    status = CATALOGUE["crm.campaigns.message.status_changed"].data_model
    base = {"message_id": "m-1", "campaign_id": "cmp-1", "customer_id": "c-1", "channel": "webhook", "at": AT}
    for value in ("queued", "sent", "delivered", "bounced", "failed", "opened", "clicked", "unsubscribed",
                  "suppressed"):
        assert status.model_validate({**base, "status": value}).status == value
    with pytest.raises(ValidationError):
        status.model_validate({**base, "status": "read"})
    unsubscribed = CATALOGUE["crm.campaigns.unsubscribed"].data_model
    event = {"customer_id": "c-1", "channel": "email", "campaign_id": "cmp-1", "message_id": "m-1", "at": AT}
    assert unsubscribed.model_validate(event).channel == "email"
    with pytest.raises(ValidationError):
        unsubscribed.model_validate({**event, "channel": "webhook"})  # only consents can be withdrawn
