"""The log check every service test runs at teardown (tests/conftest.py: start_service) finds each
kind of leak it looks for, and leaves ordinary log lines alone."""

from __future__ import annotations

import pytest
from crm_shared.auth import identity_key

from tests.harness.infra import TEST_AUTH_SECRET, TEST_PII_KEY, leaks_in

ORDINARY = ('{"event": "record dead-lettered", "topic": "commerce.orders", "reason": "invalid_data", '
            '"error": "total_amount: Input should be a valid decimal", "customer_id": "c-1234"}')


@pytest.mark.parametrize("line, kind", [
    (f'{{"event": "settings", "auth_secret": "{TEST_AUTH_SECRET}"}}', "AUTH_SECRET"),
    (f"PII_KEY={TEST_PII_KEY}", "PII_KEY"),
    (f"IDENTITY_KEY={identity_key(TEST_AUTH_SECRET, 'tickets')}", "an IDENTITY_KEY"),
    ("jwt secret test-jwt-secret-of-the-identity-provider-0123456789", "JWT secret"),
    ('{"authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudC0xIn0.sig"}', "a bearer token"),
    ('{"event": "lookup", "email": "c-abc@Example.com"}', "an e-mail address"),
    ('{"phone": "+86 138 0013 8000"}', "a phone number"),
    ('{"phone": "+8613800138000"}', "a phone number"),
    ('{"name": "Test Customer"}', "a customer's name"),
])
def test_each_kind_of_leak_is_found(line, kind):
    assert [leak.split(":")[0] for leak in leaks_in(f"{ORDINARY}\n{line}\n")] == [kind]


def test_ordinary_lines_are_not_leaks():
    assert leaks_in(ORDINARY + "\n" + '{"event": "service started", "group": "crm-profile"}') == []
