from crm_shared.bus.consumer import EventConsumer, HandlerTable, Inbound
from crm_shared.bus.outbox import OutboxRelay, add_to_outbox

__all__ = ["EventConsumer", "HandlerTable", "Inbound", "OutboxRelay", "add_to_outbox"]
