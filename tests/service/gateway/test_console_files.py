"""The console's files as the gateway serves them: the page and its scripts under a strict
Content-Security-Policy, nothing outside the static folder, nothing of it in the API document."""

from __future__ import annotations

import pytest


@pytest.fixture
def gateway(gateway_stack):
    return gateway_stack(upstreams=())


async def test_the_console_page_and_its_scripts_are_served_under_a_strict_policy(gateway):
    async with gateway.client() as http:
        page = await http.get("/console/")
        script = await http.get("/console/static/app.js")
        redirect = await http.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="static/app.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert redirect.status_code == 308 and redirect.headers["location"] == "/console/"


@pytest.mark.parametrize("path", ["/console/static/../routes.py", "/console/static/%2e%2e/routes.py",
                                  "/console/static/..%2froutes.py", "/console/static/lib/../../__init__.py",
                                  "/console/static/nothing.js", "/console/static/"])
async def test_nothing_outside_the_static_folder_is_served(gateway, path):
    async with gateway.client() as http:
        answer = await http.get(path)
    assert answer.status_code == 404
    assert "def " not in answer.text and "import" not in answer.text


async def test_the_console_is_not_part_of_the_api_document(gateway):
    async with gateway.client() as http:
        document = (await http.get("/openapi.json")).json()
    assert not [path for path in document["paths"] if path.startswith("/console")]
