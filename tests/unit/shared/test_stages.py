"""Batch staging keeps each customer's order (record key) while grouping events by type."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord
from crm_shared.bus.consumer import Inbound, _stages
from crm_shared.events.envelope import CloudEvent


def _inbound(partition: int, offset: int, event_type: str, key: bytes | None = b"c") -> Inbound:
    event = CloudEvent(id=f"{partition}-{offset}", source="s", type=event_type, subject="c")
    record = ConsumerRecord("t", partition, offset, 0, 0, key, b"{}", None, 1, 2, [])
    return Inbound(event, None, record)


def test_a_type_change_within_a_customers_events_starts_a_new_stage():
    a, b = "commerce.customer.registered", "commerce.order.paid"
    events = [_inbound(0, 0, a), _inbound(0, 1, b), _inbound(0, 2, b), _inbound(0, 3, a),
              _inbound(1, 0, b, key=b"d"), _inbound(1, 1, b, key=b"d")]
    stages = _stages(events)
    as_ids = [{t: [i.event.id for i in group] for t, group in stage.items()} for stage in stages]
    assert as_ids == [
        {a: ["0-0"], b: ["1-0", "1-1"]},
        {b: ["0-1", "0-2"]},
        {a: ["0-3"]},
    ]


def test_a_single_type_batch_is_one_stage_with_one_group():
    events = [_inbound(p, o, "commerce.order.paid") for p in range(3) for o in range(4)]
    stages = _stages(events)
    assert len(stages) == 1 and len(stages[0]["commerce.order.paid"]) == 12


def test_customers_sharing_a_partition_are_staged_independently():
    placed, paid, completed = "commerce.order.placed", "commerce.order.paid", "commerce.order.completed"
    # Two customers interleaved in one partition: placed, paid, completed each.
    events = [_inbound(0, 0, placed, b"x"), _inbound(0, 1, paid, b"x"), _inbound(0, 2, placed, b"y"),
              _inbound(0, 3, completed, b"x"), _inbound(0, 4, paid, b"y"), _inbound(0, 5, completed, b"y")]
    as_ids = [{t: [i.event.id for i in group] for t, group in stage.items()} for stage in _stages(events)]
    assert as_ids == [{placed: ["0-0", "0-2"]}, {paid: ["0-1", "0-4"]}, {completed: ["0-3", "0-5"]}]


def test_records_without_a_key_keep_their_partitions_order():
    a, b = "commerce.customer.registered", "commerce.order.paid"
    events = [_inbound(0, 0, a, None), _inbound(0, 1, b, None), _inbound(1, 0, b, None)]
    as_ids = [{t: [i.event.id for i in group] for t, group in stage.items()} for stage in _stages(events)]
    assert as_ids == [{a: ["0-0"], b: ["1-0"]}, {b: ["0-1"]}]
