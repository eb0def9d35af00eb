from crm_shared.settings import ServiceSettings


class ChurnSettings(ServiceSettings):
    service_name: str = "churn"
    http_port: int = 8004
