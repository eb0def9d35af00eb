from crm_shared.settings import ServiceSettings


class ProfileSettings(ServiceSettings):
    service_name: str = "profile"
    http_port: int = 8001
