"""The console's shell in Chromium: sign in on the dev sign-in screen as each role, see that
role's menu, switch the language, sign out; the session cookie is out of scripts' reach and
nothing is kept in local storage but the language."""

from __future__ import annotations

import pytest
from playwright.async_api import expect


@pytest.mark.parametrize("role, home, absent", [("agent", "Find a customer", "Approvals"),
                                                 ("supervisor", "Find a customer", None),
                                                 ("marketer", None, "Find a customer")])
async def test_each_role_signs_in_and_sees_its_own_menu(console, page, role, home, absent):
    await console.sign_in(page, role, f"{role}.one")
    nav = page.get_by_role("navigation", name="Main")
    if home:
        await expect(nav.get_by_role("link", name=home)).to_be_visible()
    if absent:
        await expect(nav.get_by_role("link", name=absent)).to_have_count(0)
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies["crm_session"]["httpOnly"] and cookies["crm_session"]["sameSite"] == "Strict"
    assert "crm_session" not in await page.evaluate("document.cookie")
    assert await page.evaluate("Object.keys(localStorage)") in ([], ["crm.console.lang"])


async def test_the_language_switches_and_sign_out_ends_the_session(console, page):
    await console.sign_in(page, "agent", "li.na")
    await page.get_by_label("Language").select_option("zh-CN")
    await expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="查找客户")).to_be_visible()
    assert await page.get_attribute("html", "lang") == "zh-CN"
    await page.get_by_role("button", name="退出登录").click()
    await expect(page.get_by_role("heading", name="登录")).to_be_visible()
    async with console.client() as http:  # the cookie is gone from the browser, and the API agrees
        cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
        answer = await http.get("/v1/session", cookies={k: v for k, v in cookies.items() if k == "crm_session"})
    assert answer.status_code == 401
