"""Two people in two browsers on one install: each sees only their own chats, approvals and
documents; a member's Settings has their own tokens and none of the admin's pages, which the admin
sees (global settings, People, the policy's save) and uses: People invites and disables. A person
names another their approval delegate in Settings, who then sees that person's pending action."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WAIT_MS, Served, go, log_in
from tests.e2e.people import PASSWORD, invited, signed_in
from tests.e2e.test_google_http import REPLY, connect_http, wait_for


@contextmanager
def another_browser(page: Page) -> Iterator[Page]:
    """A page of its own browser context (its own cookies: another person's browser)."""
    assert page.context.browser is not None
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1100})
    try:
        other = context.new_page()
        other.set_default_timeout(WAIT_MS)
        yield other
    finally:
        context.close()


def chat(page: Page, message: str) -> None:
    page.locator("#chat-input textarea").fill(message)
    page.locator("#chat-input textarea").press("Enter")
    expect(page.locator('#plan-checklist[data-state="ended"]')).to_be_visible()


def test_two_people_each_see_only_their_own_and_a_member_no_admin_page(served: Served, page: Page) -> None:
    base, tag = served.base_url, uuid.uuid4().hex[:6]
    ana, ben = f"ana{tag}", f"ben{tag}"
    for name in (ana, ben):
        invited(base, name)
    # Through the API, as each of them: Ana's Google and a reply waiting for her approval; a note each
    with signed_in(base, ana, PASSWORD) as a, signed_in(base, ben, PASSWORD) as b:
        connect_http(served, a, ["gmail_read", "gmail_write"])
        thread = served.google.add_message(sender=f"pat{tag}@example.test", to="owner@example.test",
                                           subject="Lunch?", body="Free on Friday?")
        run_id = a.post("/api/runs", json={"message": f"[fanout 1 email] {REPLY.format(thread['threadId'])}"}
                        ).json()["run_id"]
        wait_for(lambda: a.get("/api/approvals", params={"run_id": run_id, "status": "pending"}).json(),
                 what="Ana's pending reply")
        for name, client in ((ana, a), (ben, b)):
            note = f"# Notes of {name}\nWhat {name} keeps for later.".encode()
            stored = client.post("/api/documents", files={"file": (f"{name}.md", note, "text/markdown")})
            assert stored.status_code in (200, 202), stored.text

    with another_browser(page) as pa, another_browser(page) as pb:
        for browser, name in ((pa, ana), (pb, ben)):
            log_in(browser, base, name, PASSWORD)
            expect(browser.locator("#signed-in-as")).to_contain_text(f"{name} (member)")
            chat(browser, f"[fanout 1] write a short note about the week of {name}")
        for browser, me, other in ((pa, ana, ben), (pb, ben, ana)):
            go(browser, "history")
            expect(browser.locator("#history-results")).to_contain_text(me)
            expect(browser.locator("#history-results")).not_to_contain_text(other)
            go(browser, "memory")
            expect(browser.locator("#memory-docs")).to_contain_text(f"Notes of {me}")
            expect(browser.locator("#memory-docs")).not_to_contain_text(other)
        go(pa, "approvals")
        expect(pa.locator("#nav-approvals")).to_have_text("Approvals (1)")
        expect(pa.locator("#page-approvals")).to_contain_text(f"pat{tag}@example.test")
        go(pb, "approvals")
        expect(pb.locator("#page-approvals")).to_contain_text("Nothing waits for you")
        expect(pb.locator("#nav-approvals")).to_have_text("Approvals")
        expect(pb.locator("#page-approvals")).not_to_contain_text(f"pat{tag}")
        pb.get_by_role("tab", name="Policy").click()
        expect(pb.locator("#policy-send_email")).to_be_visible()  # the policy, to read
        expect(pb.locator("#policy-edit")).to_be_hidden()  # not to change
        go(pb, "settings")
        expect(pb.locator("#tokens-list")).to_contain_text("No API tokens")
        for admin_only in ("#settings-admin", "#people-list", "#settings-save"):
            expect(pb.locator(admin_only)).to_be_hidden()
        # Ana names Ben her delegate in her Settings: then Ben's Approvals shows her reply, as hers
        go(pa, "settings")
        expect(pa.locator("#delegates-mine")).to_contain_text("nobody")
        pa.locator("#delegates-names input").fill(ben)
        pa.locator("#delegates-save").click()
        expect(pa.locator("#delegates-result")).to_contain_text("Saved")
        expect(pa.locator("#delegates-mine")).to_contain_text(ben)
        go(pb, "approvals")
        expect(pb.locator("#page-approvals")).to_contain_text(f"pat{tag}@example.test")
        expect(pb.locator("#page-approvals")).to_contain_text(ana)

    # the admin's own page (the page fixture: the login token) has them, and People lists both
    expect(page.locator("#signed-in-as")).to_contain_text("(admin)")
    go(page, "settings")
    expect(page.locator("#settings-admin")).to_be_visible()
    expect(page.locator("#people-list")).to_contain_text(ana)
    expect(page.locator("#people-list")).to_contain_text(ben)
    go(page, "approvals")
    page.get_by_role("tab", name="Policy").click()
    expect(page.locator("#policy-edit")).to_be_visible()
    # People: invite someone (a one-time link for them), and disable an account
    go(page, "settings")
    page.locator("#people-name input").fill(f"cal{tag}")
    page.locator("#people-invite").click()
    expect(page.locator("#people-result")).to_contain_text(f"{base}/setup#")
    expect(page.locator("#people-list")).to_contain_text(f"cal{tag}")
    page.locator("#people-who input").fill(ben)
    page.locator("#people-disable").click()
    expect(page.locator("#people-result")).to_contain_text("disabled")
    refused = httpx.post(f"{base}/api/auth/login", json={"name": ben, "password": PASSWORD}, timeout=60)
    assert refused.status_code == 401
