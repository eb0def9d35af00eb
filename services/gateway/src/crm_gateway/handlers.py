"""Event handlers of the gateway, by event type: none, the gateway consumes nothing (it only
publishes, through its outbox, what callers send over HTTP)."""

from crm_shared.bus import ServiceHandler, topics_of

HANDLERS: dict[str, ServiceHandler] = {}
TOPICS = topics_of(HANDLERS)
