"""The unit tier: domain rules and use cases, without PostgreSQL or a broker (`make unit`).

The infrastructure fixtures of the root conftest are overridden here so that a unit test that asks
for a database or a broker fails at once instead of quietly starting one.
"""

from __future__ import annotations

import pytest


def _no_infrastructure(name: str):
    @pytest.fixture
    def refuse():
        pytest.fail(f"a unit test may not use {name}: move it to tests/service, or use the in-memory unit of work")
    return refuse


pg_server_url = _no_infrastructure("PostgreSQL")
migrated_templates = _no_infrastructure("PostgreSQL")
make_database = _no_infrastructure("PostgreSQL")
broker = _no_infrastructure("a Kafka broker")
start_service = _no_infrastructure("a service process")
