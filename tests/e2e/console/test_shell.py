"""The console's shell in Chromium: sign in on the dev sign-in screen as each role, see that
role's menu, switch the language, sign out; the session cookie is out of scripts' reach and
nothing is kept in local storage but the language. Only the gateway and the profile service run:
the shell needs no more."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.harness.console import ConsoleStack

# Menu entries each role must and must not see (one per area).
MENUS = {"agent": ({"Find a customer"}, {"Approvals", "Campaigns"}),
         "supervisor": ({"Find a customer", "Approvals"}, set()),
         "marketer": ({"Campaigns"}, {"Find a customer", "Approvals"})}


@pytest.fixture
def console(gateway_stack):
    return ConsoleStack(gateway_stack(upstreams=("profile",)), mail=None)


async def test_each_role_signs_in_sees_its_own_menu_and_signs_out(console, page):
    for role, (present, absent) in MENUS.items():
        await console.sign_in(page, role, f"{role}.one")
        nav = page.get_by_role("navigation", name="Main")
        for name in present:
            await expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
        for name in absent:
            await expect(nav.get_by_role("link", name=name, exact=True)).to_have_count(0)
        cookies = {c["name"]: c for c in await page.context.cookies()}
        assert cookies["crm_session"]["httpOnly"] and cookies["crm_session"]["sameSite"] == "Strict"
        assert "crm_session" not in await page.evaluate("document.cookie")
        assert await page.evaluate("Object.keys(localStorage)") in ([], ["crm.console.lang"])
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        assert not {"crm_session", "crm_csrf"} & {c["name"] for c in await page.context.cookies()}
        assert await page.evaluate("fetch('/v1/session').then(r => r.status)") == 401


async def test_keyboard_only_sign_in_and_the_language_follows_the_browser_and_can_be_switched(console, page):
    # The keyboard alone: the name field has the focus, Enter signs in, and the menu is reachable.
    await page.goto(console.url)
    await expect(page.get_by_label("Your name (user id)")).to_be_focused()
    await page.keyboard.type("li.na")
    await page.keyboard.press("Enter")
    await expect(page.locator("#who")).to_contain_text("li.na")
    # The first screen puts the focus where the work starts; the menu is reached back with Shift+Tab.
    await expect(page.get_by_label("Search for")).to_be_focused()
    reached = []
    for _ in range(12):
        await page.keyboard.press("Shift+Tab")
        reached.append(await page.evaluate("document.activeElement.textContent"))
        if reached[-1] == "Find a customer":
            break
    assert reached[-1] == "Find a customer", reached
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Find a customer")).to_be_visible()  # the browser's en-US
    await page.get_by_label("Language").select_option("zh-CN")
    await expect(nav.get_by_role("link", name="查找客户")).to_be_visible()
    assert await page.get_attribute("html", "lang") == "zh-CN"
    await page.reload()  # the choice is kept (the one thing in localStorage)
    await expect(page.get_by_role("button", name="退出登录")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('crm.console.lang')") == "zh-CN"
