"""CloudEvents 1.0 on Kafka: read binary and structured mode, write binary mode.

Binary mode (what we emit): attributes in ``ce_*`` headers, ``content-type: application/json``,
the JSON ``data`` as the record value, the customer id as the record key.
Structured mode (accepted): the whole event as an ``application/cloudevents+json`` value.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crm_shared.tracing import valid_traceparent

# Event ids must be unique, not secret: a PRNG seeded from the OS gives 122 random bits without
# uuid4's system call per id (visible in the loyalty consumer, which emits an event per order;
# docs/benchmarks.md).
_ids = random.Random()

SPECVERSION = "1.0"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
JSON_CONTENT_TYPE = "application/json"

# Attributes with a header of their own; anything else with a ce_ prefix is an extension.
_CONTEXT_ATTRIBUTES = ("id", "source", "type", "specversion", "time", "subject", "dataschema",
                       "datacontenttype")


class EnvelopeError(ValueError):
    """The record is not a valid CloudEvent. The consumer dead-letters it."""


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event whose data is a JSON object."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=200)
    specversion: str = SPECVERSION
    time: datetime | None = None
    subject: str | None = Field(default=None, max_length=200)
    dataschema: str | None = None
    datacontenttype: str = JSON_CONTENT_TYPE
    data: dict[str, Any] = Field(default_factory=dict)
    traceparent: str | None = None

    @field_validator("specversion")
    @classmethod
    def _v1(cls, value: str) -> str:
        if value != SPECVERSION:
            raise ValueError(f"specversion must be {SPECVERSION!r}")
        return value

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("time must carry a timezone (RFC 3339)")
        return value

    @classmethod
    def new(cls, *, type: str, source: str, subject: str, data: dict[str, Any],
            dataschema: str | None = None, time: datetime | None = None,
            traceparent: str | None = None) -> CloudEvent:
        """An event to emit: always with id, time, subject and dataschema (what every consumer relies on).

        Built without validation (``model_construct``): every attribute is produced here, and the
        services emit about one event per applied event, so validation showed up in profiles.
        """
        from crm_shared.events.catalogue import dataschema_for

        return cls.model_construct(
            id=str(uuid.UUID(int=_ids.getrandbits(128), version=4)), source=source, type=type,
            specversion=SPECVERSION, subject=subject,
            data=data, time=time or datetime.now(UTC), dataschema=dataschema or dataschema_for(type),
            datacontenttype=JSON_CONTENT_TYPE, traceparent=traceparent)

    def to_structured(self) -> dict[str, Any]:
        """The structured-mode JSON object (used by ``crm publish`` files and the HTTP ingest)."""
        return self.model_dump(mode="json", exclude_none=True)


def _header_dict(headers: list[tuple[str, bytes]] | tuple | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, value in headers or ():
        if value is None:
            continue
        try:
            result[key.lower()] = value.decode() if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"header {key!r} is not UTF-8") from exc
    return result


def from_kafka(value: bytes | None, headers: list[tuple[str, bytes]] | tuple | None) -> CloudEvent:
    """Parse a Kafka record in binary or structured mode. Raises EnvelopeError."""
    hdrs = _header_dict(headers)
    if value is None:
        raise EnvelopeError("record has no value")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"value is not JSON: {exc}") from exc
    try:
        if "ce_specversion" in hdrs:
            attributes: dict[str, Any] = {
                k[3:]: v for k, v in hdrs.items() if k.startswith("ce_") and k[3:] in _CONTEXT_ATTRIBUTES
            }
            attributes["datacontenttype"] = hdrs.get("content-type", JSON_CONTENT_TYPE)
            if not attributes["datacontenttype"].startswith(JSON_CONTENT_TYPE):
                raise EnvelopeError(f"unsupported content-type {attributes['datacontenttype']!r}")
            if not isinstance(body, dict):
                raise EnvelopeError("event data must be a JSON object")
            attributes["data"] = body
            attributes["traceparent"] = valid_traceparent(hdrs.get("traceparent") or hdrs.get("ce_traceparent"))
            return CloudEvent.model_validate(attributes)
        if not isinstance(body, dict) or "specversion" not in body:
            raise EnvelopeError("record is neither a binary-mode (ce_* headers) nor a structured-mode CloudEvent")
        return parse_structured(body, traceparent=hdrs.get("traceparent"))
    except ValidationError as exc:
        raise EnvelopeError(validation_summary(exc)) from exc


def parse_structured(body: dict[str, Any], traceparent: str | None = None) -> CloudEvent:
    """Parse a structured-mode event object (Kafka value or HTTP body). Raises EnvelopeError."""
    fields = {k: v for k, v in body.items() if k in _CONTEXT_ATTRIBUTES or k in ("data", "traceparent")}
    unknown = sorted(set(body) - set(fields) - {"data_base64"})
    if "data_base64" in body:
        raise EnvelopeError("data_base64 is not supported; send JSON data")
    fields.setdefault("datacontenttype", JSON_CONTENT_TYPE)
    if not str(fields["datacontenttype"]).startswith(JSON_CONTENT_TYPE):
        raise EnvelopeError(f"unsupported datacontenttype {fields['datacontenttype']!r}")
    fields["traceparent"] = valid_traceparent(fields.get("traceparent") or traceparent)
    del unknown  # other extension attributes are allowed by the spec and ignored
    try:
        return CloudEvent.model_validate(fields)
    except ValidationError as exc:
        raise EnvelopeError(validation_summary(exc)) from exc


def to_kafka(event: CloudEvent) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Binary mode: (key, value, headers). The key is the subject (the customer id)."""
    headers = [
        ("ce_specversion", SPECVERSION.encode()),
        ("ce_id", event.id.encode()),
        ("ce_source", event.source.encode()),
        ("ce_type", event.type.encode()),
        ("content-type", event.datacontenttype.encode()),
    ]
    if event.time is not None:
        headers.append(("ce_time", event.time.isoformat().encode()))
    if event.subject is not None:
        headers.append(("ce_subject", event.subject.encode()))
    if event.dataschema is not None:
        headers.append(("ce_dataschema", event.dataschema.encode()))
    if event.traceparent:
        headers.append(("traceparent", event.traceparent.encode()))
    key = (event.subject or event.id).encode()
    return key, orjson.dumps(event.data), headers


def validation_summary(exc: ValidationError) -> str:
    """A one-line reason from a pydantic error, for dead-letter headers and per-event results."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "event"
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts)
