from crm_shared.bus.consumer import (
    EventConsumer,
    HandlerTable,
    Inbound,
    ServiceHandler,
    bind_handlers,
    topics_of,
)
from crm_shared.bus.outbox import OutboxRelay, add_to_outbox

__all__ = ["EventConsumer", "HandlerTable", "Inbound", "OutboxRelay", "ServiceHandler", "add_to_outbox",
           "bind_handlers", "topics_of"]
