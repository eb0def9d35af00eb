"""Event handlers of the tickets service, registered in one table by event type. None yet."""

from crm_shared.bus import HandlerTable

TOPICS: tuple[str, ...] = ()

HANDLERS: HandlerTable = {}
