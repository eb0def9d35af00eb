"""HTTP robustness through the real gateway to the real services, with a supervisor's token, and of
each service on its own.

1. schemathesis generates valid and invalid requests (its examples, coverage and fuzzing phases)
   for every operation of the gateway's merged OpenAPI, which routes to every service: no request
   may get a 5xx, and no documented response may violate its schema.
2. Hand-made hostile input: an oversized body, deeply nested JSON, invalid UTF-8, huge page
   sizes, negative amounts, NUL characters, and SQL and script injection strings in text fields,
   each answered with a clear 4xx problem or stored verbatim, and the data intact afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from crm_shared.auth import Identity, Role
from crm_shared.events.catalogue import TOPIC_CUSTOMERS

from tests.harness.events import customer_registered, new_customer_id
from tests.harness.infra import identity_headers, wait_until
from tests.service.gateway.conftest import bearer

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "3"))  # per operation and phase; `make soak`: 100
# Each service on its own, with the identity the gateway would forward: fewer examples, as the
# gateway run above already reaches every operation.
SERVICE_MAX_EXAMPLES = int(os.environ.get("FUZZ_SERVICE_MAX_EXAMPLES", "3"))
INJECTIONS = ["'; DROP TABLE tickets; --", "\" OR 1=1 --", "<script>alert(1)</script>", "{{7*7}}${7*7}",
              "../../etc/passwd", "Robert'); DELETE FROM customers;--", "\u202eevil"]


def schemathesis(url: str, headers: dict[str, str], max_examples: int = MAX_EXAMPLES) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "st"), "run", f"{url}/openapi.json",
               "--checks", "not_a_server_error,response_schema_conformance",
               "--max-examples", str(max_examples), "--seed", "20261201", "--no-color",
               "--phases", "examples,coverage,fuzzing", "--request-timeout", "10", "--generation-database", "none",
               *[arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def is_problem(response: httpx.Response, *statuses: int) -> bool:
    return response.status_code in statuses and response.headers["content-type"].startswith("application/problem+json")


async def hostile_requests(http: httpx.AsyncClient, customer: str) -> None:
    # Oversized: past the gateway's 1 MiB limit, refused before reaching a service.
    assert is_problem(await http.post(f"/v1/profiles/{customer}/notes", json={"body": "x" * 2_000_000}), 413)
    # Deeply nested JSON and invalid UTF-8.
    deep = b"[" * 100_000 + b"]" * 100_000
    for body in (deep, b'{"body": "\xff\xfe\xfd"}', b'{"body": "unterminated'):
        response = await http.post(f"/v1/profiles/{customer}/notes", content=body,
                                   headers={"content-type": "application/json"})
        assert is_problem(response, 400, 422), (body[:20], response.status_code, response.text[:200])
    # Huge page sizes and negative amounts.
    for path in ("/v1/profiles?name=a&limit=1000000000", "/v1/tickets?limit=99999999999999999999",
                 f"/v1/profiles/{customer}/timeline?limit=-1"):
        assert is_problem(await http.get(path), 422), path
    for points in (-5, 0, 10**12):
        response = await http.post(f"/v1/loyalty/accounts/{customer}/redemptions",
                                   json={"points": points, "kind": "gift", "gift_sku": "mug"},
                                   headers={"Idempotency-Key": f"neg-{points}"})
        assert is_problem(response, 422), (points, response.status_code)
    # A NUL character cannot be stored in PostgreSQL text: a 422, not a 500.
    assert is_problem(await http.post(f"/v1/profiles/{customer}/notes", json={"body": "a\u0000b"}), 422)
    # Injection strings are data: stored and returned verbatim, as JSON, and nothing else happens.
    for n, text in enumerate(INJECTIONS):
        ticket = await http.post("/v1/tickets", json={"customer_id": customer, "kind": "complaint", "channel": "web",
                                                      "subject": text, "description": text, "category": text},
                                 headers={"Idempotency-Key": f"injection-ticket-{n}"})
        assert ticket.status_code == 201, ticket.text
        read = await http.get(f"/v1/tickets/{ticket.json()['ticket_id']}")
        assert read.headers["content-type"] == "application/json"
        assert (read.json()["subject"], read.json()["description"]) == (text, text)
        note = await http.post(f"/v1/profiles/{customer}/notes", json={"body": text},
                               headers={"Idempotency-Key": f"injection-note-{n}"})
        assert note.status_code == 201 and note.json()["body"] == text, (text, note.text)
        assert (await http.get("/v1/profiles", params={"name": text})).status_code == 200
    listed = (await http.get("/v1/tickets", params={"customer_id": customer, "limit": 100})).json()["items"]
    assert len(listed) == len(INJECTIONS)
    assert (await http.get(f"/v1/profiles/{customer}")).status_code == 200


async def _stack(broker, gateway_stack):
    # The rate limits off: the point is what reaches the services (tests/service/gateway covers the limiter).
    stack = gateway_stack(RATE_LIMIT_CLIENT="1000000/minute", RATE_LIMIT_CUSTOMER="1000000/minute")
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=10) as http:
        assert (await http.get("/readyz")).status_code == 200
    return stack


async def test_hostile_requests_get_clear_problems_and_injection_strings_are_only_data(broker, gateway_stack):
    stack = await _stack(broker, gateway_stack)
    customer = new_customer_id()
    await broker.publish(TOPIC_CUSTOMERS, [customer_registered(customer)])
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=30,
                                 headers=bearer("supervisor", "sup-fuzz")) as http:
        await wait_until(lambda: _exists(http, customer), what="the customer in the profile")
        await hostile_requests(http, customer)
        assert (await http.get("/readyz")).status_code == 200  # still standing


async def test_generated_requests_never_get_a_5xx_or_an_answer_outside_the_schema(broker, gateway_stack):
    stack = await _stack(broker, gateway_stack)
    assert_clean(schemathesis(stack.gateway.url, bearer("supervisor", "sup-fuzz")))
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=10) as http:
        assert (await http.get("/readyz")).status_code == 200  # still standing


@pytest.mark.parametrize("name", ["profile", "loyalty", "tickets", "churn"])
async def test_each_service_on_its_own_never_answers_a_5xx_or_outside_its_schema(name, make_database, start_service):
    service = start_service(name, make_database(name))
    supervisor = identity_headers(Identity(subject="sup-fuzz", role=Role.SUPERVISOR), service=name)
    assert_clean(schemathesis(service.url, supervisor, SERVICE_MAX_EXAMPLES))
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
        assert (await http.get("/readyz")).status_code == 200


def assert_clean(result: subprocess.CompletedProcess) -> None:
    report = result.stdout[-8000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    cases = result.stdout.split("Test cases:")[-1]
    assert "generated" in cases and " failed" not in cases, report
    assert "Rate limited" not in result.stdout, report


async def _exists(http: httpx.AsyncClient, customer: str) -> bool:
    return (await http.get(f"/v1/profiles/{customer}")).status_code == 200
