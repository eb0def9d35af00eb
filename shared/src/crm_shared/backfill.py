"""Backfill order history from a CSV file as ``commerce.order.*`` events (``crm import FILE.csv``).

The history goes through Kafka like live orders, so every service (profile statistics and RFM,
loyalty points and tiers, churn) builds its state the one way it always does.

Columns (a header row names them; order does not matter, unknown columns are refused):

    order_id, customer_id, paid_at, total_amount      required
    currency                                          default: --currency (CNY)
    channel                                           optional, e.g. web, app, store
    completed_at                                      optional: also emits commerce.order.completed
                                                      (the return window closed; points confirmed)

Times are RFC 3339 / ISO 8601 with a timezone (``2025-03-01T10:15:00+08:00``) or a date
(``2025-03-01``, read as midnight UTC). Amounts are decimal strings (``199.90``).

Guarantees:

- The whole file is validated first, against the same event catalogue the consumers use; if any
  row is invalid nothing is published and every bad row is listed with its line number.
- Event ids are derived from the order id (UUIDv5), so importing the same file twice, or again
  after an interrupted run, publishes the same events and every consumer applies each once.
- Events are published in the order of their times (so a customer's history arrives in order),
  keyed by customer id like live events. Rows are sorted in memory: for a file of many millions
  of rows, import it in chunks by date.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from pydantic import ValidationError

from crm_shared.bus.kafka import Kafka, all_delivered, new_producer
from crm_shared.events.catalogue import OrderData, dataschema_for, topic_for
from crm_shared.events.envelope import CloudEvent, to_kafka, validation_summary

REQUIRED_COLUMNS = {"order_id", "customer_id", "paid_at", "total_amount"}
OPTIONAL_COLUMNS = {"currency", "channel", "completed_at"}
# The namespace of import event ids: uuid5(namespace, "<order_id>/<type>") is stable across runs.
IMPORT_NAMESPACE = uuid.UUID("6f1d3c52-5d0e-4a53-9c1e-2a4c8f0e7b19")
SOURCE = "crm/import"
IN_FLIGHT = 2000  # sends awaited together: enough to fill the producer's batches


class BackfillError(ValueError):
    """The file cannot be imported; the message lists every problem."""


@dataclass(frozen=True)
class ImportReport:
    orders: int
    events: int


def _parse_time(value: str) -> datetime:
    value = value.strip()
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("needs a timezone (e.g. +00:00 or Z)")
    return parsed


def _event(type_: str, data: OrderData, at: datetime) -> CloudEvent:
    return CloudEvent(id=str(uuid.uuid5(IMPORT_NAMESPACE, f"{data.order_id}/{type_}")), source=SOURCE,
                      type=type_, subject=data.customer_id, time=at, dataschema=dataschema_for(type_),
                      data=data.model_dump(mode="json", exclude_none=True))


def read_orders(path: Path, *, default_currency: str = "CNY") -> list[CloudEvent]:
    """Every event the file stands for, in time order; raises BackfillError listing all bad rows."""
    events: list[CloudEvent] = []
    errors: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        missing, unknown = REQUIRED_COLUMNS - columns, columns - REQUIRED_COLUMNS - OPTIONAL_COLUMNS
        if missing or unknown:
            problems = ([f"missing column(s): {', '.join(sorted(missing))}"] if missing else []) + \
                       ([f"unknown column(s): {', '.join(sorted(unknown))}"] if unknown else [])
            raise BackfillError(f"{path}: " + "; ".join(problems))
        for row in reader:
            line = reader.line_num
            try:
                paid_at = _parse_time(row["paid_at"])
                completed_at = _parse_time(row["completed_at"]) if (row.get("completed_at") or "").strip() else None
                data = OrderData.model_validate({
                    "order_id": row["order_id"].strip(), "customer_id": row["customer_id"].strip(),
                    "currency": (row.get("currency") or "").strip() or default_currency,
                    "total_amount": row["total_amount"].strip(),
                    "channel": (row.get("channel") or "").strip() or None, "occurred_at": paid_at})
            except ValidationError as exc:
                errors.append(f"{path}:{line}: {validation_summary(exc)}")
                continue
            except (ValueError, AttributeError) as exc:  # a bad time, or a short row (None)
                errors.append(f"{path}:{line}: {exc}")
                continue
            if completed_at is not None and completed_at < paid_at:
                errors.append(f"{path}:{line}: completed_at is before paid_at")
                continue
            events.append(_event("commerce.order.paid", data, paid_at))
            if completed_at is not None:
                completed = data.model_copy(update={"occurred_at": completed_at})
                events.append(_event("commerce.order.completed", completed, completed_at))
    if errors:
        shown = errors[:50] + ([f"… and {len(errors) - 50} more"] if len(errors) > 50 else [])
        raise BackfillError("\n".join(shown))
    # Stable: a paid and a completed at the same instant keep their file order (paid first).
    events.sort(key=lambda event: event.time)
    return events


def _chunks(events: list[CloudEvent], size: int) -> Iterator[list[CloudEvent]]:
    for start in range(0, len(events), size):
        yield events[start:start + size]


async def publish_orders(events: list[CloudEvent], kafka: Kafka, *, progress: bool = True) -> ImportReport:
    """Publish ``events`` (from :func:`read_orders`) and wait until the broker acknowledged all."""
    from tqdm import tqdm

    producer = new_producer(kafka, "crm-import")
    await producer.start()
    try:
        with tqdm(total=len(events), unit="event", desc="import", disable=not progress) as bar:
            for chunk in _chunks(events, IN_FLIGHT):
                deliveries = []
                for event in chunk:
                    key, value, headers = to_kafka(event)
                    deliveries.append(await producer.send(topic_for(event.type), value=value, key=key,
                                                          headers=headers))
                await all_delivered(deliveries)
                bar.update(len(chunk))
    finally:
        await producer.stop()
    orders = sum(1 for event in events if event.type == "commerce.order.paid")
    return ImportReport(orders=orders, events=len(events))
