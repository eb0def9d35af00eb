import pytest
from crm_gateway.settings import GatewaySettings
from crm_shared.settings import DEV_SECRET, ServiceSettings
from pydantic import ValidationError


def test_a_placeholder_secret_is_refused_in_production():
    with pytest.raises(ValidationError, match="IDENTITY_KEY holds a placeholder"):
        ServiceSettings(service_name="profile", environment="prod", identity_key="change-me")
    with pytest.raises(ValidationError, match="AUTH_SECRET holds a placeholder"):
        GatewaySettings(environment="prod", auth_secret="change-me")


def test_the_dev_default_and_short_secrets_are_refused_in_production():
    with pytest.raises(ValidationError, match="AUTH_SECRET holds a placeholder"):
        GatewaySettings(environment="prod")
    with pytest.raises(ValidationError, match="AUTH_SECRET is shorter than 32 bytes"):
        GatewaySettings(environment="prod", auth_secret="s3cr3t-from-vault")
    with pytest.raises(ValidationError, match="IDENTITY_KEY is shorter than 32 bytes"):
        ServiceSettings(service_name="profile", environment="prod", identity_key="s3cr3t-from-vault")


def test_a_real_secret_is_accepted_in_production_and_placeholders_are_fine_in_dev():
    real = "9f1c4e7a2b8d6e0f3a5c7e9b1d3f5a7c9e1b3d5f"
    assert ServiceSettings(service_name="p", environment="prod", identity_key=real).environment == "prod"
    assert ServiceSettings(service_name="p", environment="dev").auth_secret.get_secret_value() == DEV_SECRET


def test_settings_come_from_the_environment_and_plain_postgres_urls_get_the_async_driver(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://crm@db:5432/crm_profile")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    settings = ServiceSettings(service_name="profile")
    assert settings.database_url == "postgresql+asyncpg://crm@db:5432/crm_profile"
    assert settings.database_dsn == "postgresql://crm@db:5432/crm_profile"
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.group_id == "crm-profile"


def test_jobs_as_of_another_time_are_refused_in_production():
    real = "9f1c4e7a2b8d6e0f3a5c7e9b1d3f5a7c9e1b3d5f"
    with pytest.raises(ValidationError, match="JOBS_ACCEPT_AS_OF"):
        ServiceSettings(service_name="loyalty", environment="prod", auth_secret=real, jobs_accept_as_of=True)
    assert ServiceSettings(service_name="loyalty", environment="test", jobs_accept_as_of=True).jobs_accept_as_of


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.7", "::", "crm-profile.internal"])
def test_a_placeholder_secret_is_refused_off_loopback_whatever_the_environment(host):
    # A deployment that forgets ENVIRONMENT=prod runs as dev: the published dev secret must still
    # not guard a port the network can reach.
    for environment in ("dev", "test"):
        placeholder = f"AUTH_SECRET holds a placeholder value; set a real secret on {host}"
        with pytest.raises(ValidationError, match=placeholder):
            ServiceSettings(service_name="profile", environment=environment, http_host=host)
        with pytest.raises(ValidationError, match="AUTH_SECRET is shorter than 32 bytes"):
            ServiceSettings(service_name="profile", environment=environment, http_host=host, auth_secret="short-one")
    real = "9f1c4e7a2b8d6e0f3a5c7e9b1d3f5a7c9e1b3d5f"
    assert ServiceSettings(service_name="profile", http_host=host, auth_secret=real).http_host == host


def test_the_gateways_placeholder_jwt_secret_is_refused_off_loopback_too():
    real = "9f1c4e7a2b8d6e0f3a5c7e9b1d3f5a7c9e1b3d5f"
    with pytest.raises(ValidationError, match="JWT_SECRET holds a placeholder value"):
        GatewaySettings(http_host="0.0.0.0", auth_secret=real)
    assert GatewaySettings(http_host="0.0.0.0", auth_secret=real, jwt_secret=real[::-1])


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "localhost", "::1"])
def test_placeholders_stay_usable_in_dev_on_loopback(host):
    assert ServiceSettings(service_name="profile", http_host=host).auth_secret.get_secret_value() == DEV_SECRET
