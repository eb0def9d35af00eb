import pytest
from crm_shared.settings import DEV_SECRET, ServiceSettings
from pydantic import ValidationError


def test_a_placeholder_secret_is_refused_in_production():
    with pytest.raises(ValidationError, match="AUTH_SECRET holds a placeholder"):
        ServiceSettings(service_name="profile", environment="prod", auth_secret="change-me")


def test_the_dev_default_and_short_secrets_are_refused_in_production():
    with pytest.raises(ValidationError, match="AUTH_SECRET holds a placeholder"):
        ServiceSettings(service_name="profile", environment="prod")
    with pytest.raises(ValidationError, match="AUTH_SECRET is shorter than 32 bytes"):
        ServiceSettings(service_name="profile", environment="prod", auth_secret="s3cr3t-from-vault")


def test_a_real_secret_is_accepted_in_production_and_placeholders_are_fine_in_dev():
    real = "9f1c4e7a2b8d6e0f3a5c7e9b1d3f5a7c9e1b3d5f"
    assert ServiceSettings(service_name="p", environment="prod", auth_secret=real).environment == "prod"
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
