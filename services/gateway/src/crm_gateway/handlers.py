"""Event handlers of the gateway service, registered in one table by event type. None yet."""

from crm_shared.bus import HandlerTable

TOPICS: tuple[str, ...] = ()

HANDLERS: HandlerTable = {}
