"""Browser fixtures: Playwright's client driving Debian's Chromium (``make install`` installs it with
deploy/install-browser.sh; Playwright's own browser download is not reachable here, so it is never
used). A page fails its test on an uncaught script error or a Content-Security-Policy violation,
and a failed test leaves a screenshot and the page's HTML beside its logs.

Fixtures: ``browser`` (one Chromium per test: each test's event loop is its own), ``page`` (a fresh
context made from ``browser_context_args``, which a test module may override), ``browser_artifacts``
(the folder where the screenshots of a run go: ``BROWSER_ARTIFACTS`` or ``.artifacts/browser``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

# Headless and quiet: no first-run UI, no calls home, no GPU on these machines. The sandbox needs
# user namespaces that a container running as root lacks.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]


def chromium_path() -> str:
    """Debian's Chromium, or the one ``CHROMIUM`` names. Missing is a failure, never a skip: the
    browser tests are part of the suite."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                      shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("no Chromium: run `make install` (deploy/install-browser.sh installs Debian's chromium)")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                                    args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 800}, "locale": "en-US"}


@pytest.fixture
def browser_artifacts() -> Path:
    folder = Path(os.environ.get("BROWSER_ARTIFACTS", ROOT / ".artifacts" / "browser"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def page(browser: Browser, browser_context_args, request, tmp_path) -> AsyncIterator[Page]:
    context = await browser.new_context(**browser_context_args)
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    opened.on("console", lambda message: problems.append(f"console: {message.text}")
              if message.type == "error" and "Content Security Policy" in message.text else None)
    try:
        yield opened
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed and not opened.is_closed():
            await opened.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            (tmp_path / "failure.html").write_text(await opened.content())
            print(f"browser: screenshot and HTML of the failed page in {tmp_path}")
        await context.close()
    assert not problems, "the page reported errors:\n" + "\n".join(problems)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so that ``page`` knows whether its test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
