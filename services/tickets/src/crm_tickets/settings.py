from crm_shared.settings import ServiceSettings


class TicketsSettings(ServiceSettings):
    service_name: str = "tickets"
    http_port: int = 8003
