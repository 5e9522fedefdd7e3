"""The web login with an account, in headless Chromium: a member logs in with a name and password
(a wrong one is refused on the page), and in Settings makes an API token that works as theirs —
the UI's own posts pass the door's CSRF check."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Served, browser_page, go


@pytest.fixture
def bare_page(served: Served) -> Iterator[Page]:
    """A browser page with no login."""
    with browser_page() as page:
        yield page


def test_a_member_logs_in_with_a_password_and_makes_an_api_token_in_settings(served: Served, bare_page: Page) -> None:
    base, page = served.base_url, bare_page
    name = f"uma-{uuid.uuid4().hex[:6]}"
    with served.client() as root:
        made = root.post("/api/users", json={"name": name})
        assert made.status_code == 201
        link = made.json()["link"]
    # the invite link's page: choose a password, and be logged in
    page.goto(f"{base}{link}")
    page.locator("input[type=password]").fill("uma's long password")
    page.get_by_role("button", name="Set password").click()
    expect(page.locator("#chat-input textarea")).to_be_visible(timeout=30_000)
    page.context.clear_cookies()
    page.goto(f"{base}/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.locator("input[type=text]").fill(name)
    page.locator("input[type=password]").fill("not it")
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#error")).to_contain_text("wrong name or password")
    page.locator("input[type=password]").fill("uma's long password")
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#chat-input textarea")).to_be_visible(timeout=30_000)
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["maos_session"]["httpOnly"] and cookies["maos_session"]["sameSite"] == "Lax"

    go(page, "settings")
    expect(page.locator("#tokens-list")).to_contain_text("No API tokens")
    page.locator("#token-name").locator("input, textarea").first.fill("uma's script")
    page.locator("#token-create").click()
    expect(page.locator("#token-result")).to_contain_text("shown once")
    secret = re.search(r"maos_[A-Za-z0-9_-]+", page.locator("#token-result").inner_text())
    assert secret is not None
    expect(page.locator("#tokens-list")).to_contain_text("uma's script")
    me = httpx.get(f"{base}/api/auth/me", headers={"Authorization": f"Bearer {secret.group(0)}"}, timeout=30)
    assert me.status_code == 200 and me.json()["user"]["name"] == name and me.json()["user"]["role"] == "member"
