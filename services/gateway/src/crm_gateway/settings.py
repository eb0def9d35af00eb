from crm_shared.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"
    http_port: int = 8000
