"""Event handlers of the churn service, registered in one table by event type. None yet."""

from crm_shared.bus import HandlerTable

TOPICS: tuple[str, ...] = ()

HANDLERS: HandlerTable = {}
