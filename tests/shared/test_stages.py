"""Batch staging keeps each partition's order while grouping events by type."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord
from crm_shared.bus.consumer import Inbound, _stages
from crm_shared.events.envelope import CloudEvent


def _inbound(partition: int, offset: int, event_type: str) -> Inbound:
    event = CloudEvent(id=f"{partition}-{offset}", source="s", type=event_type, subject="c")
    record = ConsumerRecord("t", partition, offset, 0, 0, b"c", b"{}", None, 1, 2, [])
    return Inbound(event, None, record)


def test_a_type_change_within_a_partition_starts_a_new_stage():
    a, b = "commerce.customer.registered", "commerce.order.paid"
    events = [_inbound(0, 0, a), _inbound(0, 1, b), _inbound(0, 2, b), _inbound(0, 3, a),
              _inbound(1, 0, b), _inbound(1, 1, b)]
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
