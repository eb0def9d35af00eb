import pytest
from crm_shared.settings import ServiceSettings
from pydantic import ValidationError


def test_a_placeholder_secret_is_refused_in_production():
    with pytest.raises(ValidationError, match="AUTH_SECRET holds a placeholder"):
        ServiceSettings(service_name="profile", environment="prod", auth_secret="change-me")


def test_a_real_secret_is_accepted_in_production_and_placeholders_are_fine_in_dev():
    assert ServiceSettings(service_name="p", environment="prod", auth_secret="s3cr3t-from-vault").environment == "prod"
    assert ServiceSettings(service_name="p", environment="dev").auth_secret.get_secret_value() == "change-me"


def test_settings_come_from_the_environment_and_plain_postgres_urls_get_the_async_driver(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://crm@db:5432/crm_profile")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    settings = ServiceSettings(service_name="profile")
    assert settings.database_url == "postgresql+asyncpg://crm@db:5432/crm_profile"
    assert settings.database_dsn == "postgresql://crm@db:5432/crm_profile"
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.group_id == "crm-profile"
