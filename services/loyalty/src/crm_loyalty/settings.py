from crm_shared.settings import ServiceSettings


class LoyaltySettings(ServiceSettings):
    service_name: str = "loyalty"
    http_port: int = 8002
