from crm_shared.events.catalogue import CATALOGUE, EventType, data_model_for
from crm_shared.events.envelope import CloudEvent, EnvelopeError, from_kafka, to_kafka

__all__ = ["CATALOGUE", "CloudEvent", "EnvelopeError", "EventType", "data_model_for", "from_kafka", "to_kafka"]
