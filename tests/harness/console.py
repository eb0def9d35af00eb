"""The console in a real browser against the whole stack: every service behind the gateway, a mail
sink for campaign e-mail, and a sign-in that goes through the console's own dev sign-in page (the
gateway sets the HttpOnly session cookie, exactly as for a user)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Page, Request, expect

from tests.harness.campaigns import CampaignsStack, start_campaigns_stack
from tests.harness.mail import MailSink


@dataclass
class ConsoleStack:
    stack: CampaignsStack
    mail: MailSink

    @property
    def url(self) -> str:
        return f"{self.stack.gateway.url}/console/"

    async def sign_in(self, page: Page, role: str, name: str) -> None:
        """Sign in on the console's sign-in screen, as a user would, and wait for the menu."""
        await page.goto(self.url)
        await page.get_by_label(re.compile("Role|角色")).select_option(role)
        await page.get_by_label(re.compile("Your name|您的名字")).fill(name)
        await page.get_by_role("button", name=re.compile("^(Sign in|登录)$")).click()
        await expect(page.locator("#who")).to_contain_text(name)

    @property
    def upstreams(self) -> set[str]:
        """The services running behind this stack's gateway."""
        return set(getattr(self.stack, "services", None) or getattr(self.stack, "upstreams", {}))

    def __getattr__(self, name: str) -> Any:  # the stack's helpers: post, get, members, profiles, db…
        return getattr(self.stack, name)


def start_console_stack(make_database, start_service, mail: MailSink, **campaigns_env: str) -> ConsoleStack:
    return ConsoleStack(start_campaigns_stack(make_database, start_service, smtp_port=mail.port, churn=True,
                                              **campaigns_env), mail)


class ApiCalls:
    """Every request a page makes to the gateway's API, as (method, path): for the check that the
    console uses public, documented routes only."""

    def __init__(self, page: Page, origin: str) -> None:
        self.origin = origin
        self.calls: set[tuple[str, str]] = set()
        page.on("request", self._record)

    def _record(self, request: Request) -> None:
        if request.url.startswith(self.origin):
            path = request.url[len(self.origin):].split("?", 1)[0]
            if path.startswith("/v1/"):
                self.calls.add((request.method, path))


async def screenshot(page: Page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
