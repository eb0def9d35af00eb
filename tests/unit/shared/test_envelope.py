"""CloudEvents on Kafka: binary and structured mode in, binary mode out."""

from __future__ import annotations

import orjson
import pytest
from crm_shared.events.envelope import CloudEvent, EnvelopeError, from_kafka, parse_structured, to_kafka
from crm_shared.tracing import child_traceparent, new_traceparent, valid_traceparent


def _event(**overrides) -> CloudEvent:
    return CloudEvent.new(type="commerce.order.paid", source="shop/orders", subject="c-1",
                          data={"order_id": "o-1"}, traceparent=new_traceparent(), **overrides)


def test_emitted_events_are_binary_mode_keyed_by_customer_with_all_required_attributes():
    event = _event()
    key, value, headers = to_kafka(event)
    names = dict(headers)
    assert key == b"c-1"
    assert orjson.loads(value) == {"order_id": "o-1"}
    for attribute in ("ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "ce_subject", "ce_dataschema"):
        assert attribute in names
    assert names["content-type"] == b"application/json"
    assert names["ce_dataschema"] == b"https://crm.example/schemas/commerce.order.paid/v1.json"


def test_binary_mode_round_trips():
    event = _event()
    assert from_kafka(*to_kafka(event)[1:]) == event


def test_structured_mode_is_accepted():
    event = _event()
    value = orjson.dumps(event.to_structured())
    parsed = from_kafka(value, [("content-type", b"application/cloudevents+json")])
    assert parsed == event


@pytest.mark.parametrize(("value", "headers", "message"), [
    (b"{", [("ce_specversion", b"1.0")], "not JSON"),
    (None, [], "no value"),
    (b'{"order_id": "o"}', [], "neither"),
    (b"[1]", [("ce_specversion", b"1.0"), ("ce_id", b"x"), ("ce_source", b"s"), ("ce_type", b"t")], "JSON object"),
    (b"{}", [("ce_specversion", b"1.0"), ("ce_source", b"s"), ("ce_type", b"t")], "id"),
    (b"{}", [("ce_specversion", b"0.3"), ("ce_id", b"x"), ("ce_source", b"s"), ("ce_type", b"t")], "specversion"),
    (b"{}", [("ce_specversion", b"1.0"), ("ce_id", b"x"), ("ce_source", b"s"), ("ce_type", b"t"),
             ("ce_time", b"2026-01-01T00:00:00")], "timezone"),
    (b"{}", [("ce_specversion", b"1.0"), ("ce_id", b"x"), ("ce_source", b"s"), ("ce_type", b"t"),
             ("content-type", b"application/avro")], "content-type"),
])
def test_invalid_records_raise_an_envelope_error_naming_the_problem(value, headers, message):
    with pytest.raises(EnvelopeError, match=message):
        from_kafka(value, headers)


def test_structured_mode_refuses_base64_data():
    with pytest.raises(EnvelopeError, match="data_base64"):
        parse_structured({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data_base64": "AA=="})


def test_traceparent_continues_the_trace_with_a_new_span():
    parent = new_traceparent()
    child = child_traceparent(parent)
    assert child.split("-")[1] == parent.split("-")[1]
    assert child.split("-")[2] != parent.split("-")[2]
    assert valid_traceparent("garbage") is None
    assert child_traceparent("garbage").count("-") == 3  # a new trace when the parent is invalid
