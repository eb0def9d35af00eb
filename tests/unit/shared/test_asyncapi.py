"""docs/asyncapi.yaml, the public event contract, must say what the event catalogue says.

Every test here compares the document with the code (``crm_shared.events.catalogue``), so a new event
type, field, required flag or interaction kind that is added on one side only fails the build.
"""

from __future__ import annotations

import re
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from crm_shared.events.catalogue import (
    CATALOGUE,
    COMMERCE_TOPICS,
    CRM_TOPICS,
    CurrencyCode,
    CustomerId,
    EventData,
    InteractionData,
    InteractionKind,
    OrderData,
)
from crm_shared.events.envelope import SPECVERSION
from pydantic import BaseModel, ValidationError

DOC_PATH = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.yaml"
CE_HEADERS = {"ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "ce_subject", "ce_dataschema",
              "content-type", "traceparent"}
REQUIRED_CE_HEADERS = {"ce_id", "ce_source", "ce_type", "ce_specversion"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))


def resolve(doc: dict[str, Any], node: Any) -> Any:
    """Follow local ``$ref``s (``#/a/b``) until a node that is not a reference."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local references are expected, got {ref!r}"
        assert ref not in seen, f"reference cycle at {ref!r}"
        seen.add(ref)
        node = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict) and part in node, f"dangling reference {ref!r}"
            node = node[part]
    return node


def channel_messages(doc: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(channel, resolved message) for every message of every channel."""
    pairs = []
    for channel in doc.get("channels", {}).values():
        channel = resolve(doc, channel)
        for message in (channel.get("messages") or {}).values():
            pairs.append((channel, resolve(doc, message)))
    return pairs


def messages_by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for _, message in channel_messages(doc):
        assert message["name"] not in result, f"message {message['name']!r} is on more than one channel"
        result[message["name"]] = message
    return result


def object_schema(doc: dict[str, Any], schema: Any) -> dict[str, Any]:
    """The object schema of a (possibly nullable, oneOf/anyOf-wrapped or referenced) schema."""
    schema = resolve(doc, schema)
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            objects = [s for s in (resolve(doc, b) for b in schema[combinator]) if "properties" in s]
            assert len(objects) == 1, f"expected one object branch in {schema!r}"
            return objects[0]
    if "items" in schema:
        return object_schema(doc, schema["items"])
    return schema


def leaf_schema(doc: dict[str, Any], schema: Any) -> dict[str, Any]:
    """A scalar schema, with the non-null branch of a oneOf/anyOf picked."""
    schema = resolve(doc, schema)
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            branches = [s for s in (resolve(doc, b) for b in schema[combinator]) if s.get("type") != "null"]
            assert len(branches) == 1
            return branches[0]
    return schema


def nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The EventData models inside an annotation (``Consents | None``, ``list[OrderItem]`` ...)."""
    if isinstance(annotation, type) and issubclass(annotation, EventData):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in nested_models(arg)]


def plain_types(annotation: Any) -> set[Any]:
    """The scalar types of an annotation with Optional / Annotated unwrapped."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return plain_types(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return {t for arg in typing.get_args(annotation) for t in plain_types(arg)}
    return {origin or annotation}


def model_schemas(doc: dict[str, Any]) -> list[tuple[str, type[BaseModel], dict[str, Any]]]:
    """(where, model, object schema) for every payload and every model nested in one."""
    result = []

    def walk(where: str, model: type[BaseModel], schema: dict[str, Any]) -> None:
        result.append((where, model, schema))
        for name, field in model.model_fields.items():
            for nested in nested_models(field.annotation):
                assert name in schema.get("properties", {}), f"{where}: no property {name!r}"
                walk(f"{where}.{name}", nested, object_schema(doc, schema["properties"][name]))

    for event_type, message in messages_by_name(doc).items():
        if event_type in CATALOGUE:
            walk(event_type, CATALOGUE[event_type].data_model, object_schema(doc, message["payload"]))
    return result


# --------------------------------------------------------------------------- the document itself


def test_the_document_parses_and_is_asyncapi_3(doc):
    assert isinstance(doc, dict)
    assert re.fullmatch(r"3\.\d+\.\d+", str(doc["asyncapi"]))
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["channels"] and doc["operations"] and doc["components"]["messages"]
    for server in doc["servers"].values():
        assert server["protocol"] == "kafka"
    assert "127.0.0.1:19092" in {s["host"] for s in doc["servers"].values()}


def test_the_description_names_the_dead_letter_contract(doc):
    text = doc["info"]["description"]
    for needle in ("<topic>.<consumer-group>.dlq", "dlq.original.topic", "dlq.original.partition",
                   "dlq.original.offset", "dlq.consumer.group", "dlq.reason", "dlq.error",
                   "invalid_envelope", "unknown_type", "invalid_data", "handler_failed",
                   "application/cloudevents+json"):
        assert needle in text


def test_every_reference_resolves(doc):
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(doc, node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)


# --------------------------------------------------------------------------- messages and channels


def test_the_messages_are_exactly_the_catalogue(doc):
    assert set(messages_by_name(doc)) == set(CATALOGUE)
    components = doc["components"]["messages"]
    assert {resolve(doc, m)["name"] for m in components.values()} == set(CATALOGUE)
    for key, message in components.items():
        assert resolve(doc, message)["name"] == key


def test_each_message_is_on_the_channel_of_its_topic(doc):
    for channel, message in channel_messages(doc):
        assert message["name"] in CATALOGUE, f"{message['name']!r} is not in the catalogue"
        assert channel["address"] == CATALOGUE[message["name"]].topic, message["name"]
        kafka = (channel.get("bindings") or {}).get("kafka")
        if kafka and "topic" in kafka:
            assert kafka["topic"] == channel["address"]


def test_commerce_topics_are_received_and_crm_topics_are_sent(doc):
    seen: dict[str, str] = {}
    for name, operation in doc["operations"].items():
        channel = resolve(doc, operation["channel"])
        expected = "receive" if channel["address"] in COMMERCE_TOPICS else "send"
        assert channel["address"] in COMMERCE_TOPICS + CRM_TOPICS, name
        assert operation["action"] == expected, name
        channel_names = {resolve(doc, m)["name"] for m in channel["messages"].values()}
        for message in operation["messages"]:
            message = resolve(doc, message)
            assert message["name"] in channel_names, f"{name}: {message['name']} is not on its channel"
            seen[message["name"]] = operation["action"]
    assert set(seen) == set(CATALOGUE)


# --------------------------------------------------------------------------- payloads


def test_each_payload_requires_exactly_the_required_model_fields(doc):
    checked = model_schemas(doc)
    assert len(checked) > len(CATALOGUE)  # the nested models (items, consents) are checked too
    for where, model, schema in checked:
        required = {name for name, field in model.model_fields.items() if field.is_required()}
        assert set(schema.get("required", [])) == required, where
        assert len(schema.get("required", [])) == len(set(schema.get("required", []))), where


def test_each_payload_has_exactly_the_model_fields(doc):
    for where, model, schema in model_schemas(doc):
        assert schema.get("type") == "object", where
        assert set(schema.get("properties", {})) == set(model.model_fields), where


def test_the_interaction_kind_enum_is_the_literal(doc):
    schema = object_schema(doc, messages_by_name(doc)["commerce.interaction.recorded"]["payload"])
    kind = leaf_schema(doc, schema["properties"]["kind"])
    assert kind["enum"] == list(typing.get_args(InteractionKind))
    assert InteractionData.model_fields["kind"].annotation == InteractionKind


def test_field_types_follow_the_model(doc):
    currency_pattern = next(m.pattern for m in typing.get_args(CurrencyCode)[1:] if getattr(m, "pattern", None))
    for where, model, schema in model_schemas(doc):
        for name, field in model.model_fields.items():
            prop = leaf_schema(doc, schema["properties"][name])
            kinds = plain_types(field.annotation) - {type(None)}
            at = f"{where}.{name}"
            if kinds == {Decimal}:
                assert prop["type"] == "string" and prop["pattern"] == r"^\d{1,10}(\.\d{1,4})?$", at
            elif kinds == {datetime}:
                assert prop["format"] == "date-time", at
            elif kinds == {date}:
                assert prop["format"] == "date", at
            elif kinds == {bool}:
                assert prop["type"] == "boolean", at
            elif kinds == {int}:
                assert prop["type"] == "integer", at
            elif kinds == {list}:
                assert prop["type"] == "array", at
            elif kinds == {dict}:
                assert prop["type"] == "object", at
            elif kinds == {str}:
                assert "string" in ([prop["type"]] if isinstance(prop["type"], str) else prop["type"]), at
            nullable = type(None) in plain_types(field.annotation)
            raw = resolve(doc, schema["properties"][name])
            allows_null = ("null" in (raw.get("type") or []) if isinstance(raw.get("type"), list)
                           else any(resolve(doc, b).get("type") == "null" for b in raw.get("oneOf", [])))
            assert allows_null == nullable, f"{at}: nullable in the model is {nullable}"
        if "currency" in model.model_fields:
            assert leaf_schema(doc, schema["properties"]["currency"])["pattern"] == currency_pattern, where


@pytest.mark.parametrize("amount", ["0", "12.50", "99.9999", "1234567890.1234", "12345678901", "1.12345",
                                    "-1", "1,5"])
def test_the_money_pattern_agrees_with_the_model(doc, amount):
    pattern = doc["components"]["schemas"]["Money"]["pattern"]
    base = {"order_id": "o-1", "customer_id": "c-1", "currency": "CNY", "occurred_at": "2026-11-02T20:15:00+08:00"}
    try:
        OrderData.model_validate({**base, "total_amount": amount})
        model_accepts = True
    except ValidationError:
        model_accepts = False
    assert bool(re.fullmatch(pattern.removeprefix("^").removesuffix("$"), amount)) == model_accepts


# --------------------------------------------------------------------------- headers, key, examples


def test_each_message_has_cloudevents_headers_with_its_type(doc):
    for name, message in messages_by_name(doc).items():
        headers = resolve(doc, message["headers"])
        parts = [resolve(doc, p) for p in headers.get("allOf", [headers])]
        properties: dict[str, Any] = {}
        required: set[str] = set()
        for part in parts:
            for key, value in (part.get("properties") or {}).items():
                properties.setdefault(key, {}).update(resolve(doc, value))
            required |= set(part.get("required", []))
        assert set(properties) == CE_HEADERS, name
        assert REQUIRED_CE_HEADERS <= required, name
        assert properties["ce_type"]["const"] == name
        assert properties["ce_specversion"]["const"] == SPECVERSION
        if "const" in properties["ce_dataschema"]:
            assert properties["ce_dataschema"]["const"] == CATALOGUE[name].dataschema
        assert message["description"].strip(), name


def test_each_message_is_keyed_by_the_customer_id(doc):
    max_length = next(m.max_length for m in typing.get_args(CustomerId)[1:] if getattr(m, "max_length", None))
    for name, message in messages_by_name(doc).items():
        kafka = resolve(doc, resolve(doc, message["bindings"])["kafka"])
        key = resolve(doc, kafka["key"])
        assert key["type"] == "string" and key["maxLength"] == max_length, name
        assert "customer_id" in CATALOGUE[name].data_model.model_fields, name


def test_the_examples_are_valid_events(doc):
    for name, message in messages_by_name(doc).items():
        assert message.get("examples"), name
        for example in message["examples"]:
            assert example["headers"]["ce_type"] == name
            assert example["headers"]["ce_specversion"] == SPECVERSION
            data = CATALOGUE[name].data_model.model_validate(example["payload"])
            assert example["headers"]["ce_subject"] == data.customer_id
