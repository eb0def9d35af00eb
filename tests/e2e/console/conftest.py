"""The console's browser tests: each test starts the whole stack (every service behind the
gateway, a mail sink) and signs in through the console's own sign-in screen."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.harness.console import ApiCalls, start_console_stack
from tests.harness.mail import MailSink


@pytest.fixture
def mail(tmp_path):
    sink = MailSink(tmp_path).start()
    yield sink
    sink.stop()


@pytest.fixture
def console(make_database, start_service, mail):
    """The running stack with the console: ``console.url``, ``await console.sign_in(page, role, name)``,
    and the campaigns stack's helpers (``post``, ``get``, ``members``, ``profiles``, ``db`` …)."""
    return start_console_stack(make_database, start_service, mail)


@pytest.fixture(autouse=True)
async def only_documented_routes(console, page):
    """The console uses no private route: every API call a page made in a console test is an
    operation of the gateway's published OpenAPI document (method and path template)."""
    calls = ApiCalls(page, console.stack.gateway.url)
    yield calls
    document = await _complete_document(console.stack.gateway.url, console.upstreams)
    operations = [(method.upper(), re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", path) + "$"))
                  for path, item in document["paths"].items() for method in item
                  if method in {"get", "post", "put", "patch", "delete"}]
    undocumented = sorted((method, path) for method, path in calls.calls
                          if not any(m == method and pattern.match(path) for m, pattern in operations))
    assert calls.calls, "the console made no API call at all"
    assert not undocumented, f"the console called routes outside the gateway's OpenAPI document: {undocumented}"


async def _complete_document(gateway_url: str, running: set[str]) -> dict:
    """The gateway's merged document once every running service is in it: a service too busy to
    answer in time is left out of it for ten seconds (crm_gateway/openapi.py), and this check must
    not mistake that for a route the console made up. (A service the test did not start stays out.)"""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        for _ in range(30):
            document = (await http.get("/openapi.json")).json()
            missing = set(document["info"].get("x-crm-missing-upstreams", [])) & running
            if not missing:
                return document
            await asyncio.sleep(1)
    raise AssertionError(f"services missing from the OpenAPI document: {sorted(missing)}")
