"""Google as a person uses it: connect through the app's OAuth callback, then approve forty
follow-ups on the Approvals page in one go — each sent exactly once, and in the audit log."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Page, expect

from tests._db import app_sql
from tests.e2e.conftest import Served, go

REPLY = "Follow up: reply to thread_id={} [use reply_email]"


def connect_http(served: Served, api: httpx.Client, features: list[str]) -> httpx.Response:
    """Integrations → Connect: the app's consent URL, Google's redirect, the app's callback."""
    start = api.post("/api/integrations/google/connect", json={"features": features})
    assert start.status_code == 200, start.text
    consent = httpx.get(start.json()["authorization_url"], follow_redirects=False, timeout=10)
    assert consent.status_code in (302, 303)
    callback = consent.headers["location"]
    assert callback.startswith(f"{served.base_url}/api/integrations/google/callback?")
    return api.get(callback.removeprefix(served.base_url), follow_redirects=False)


def connected_with_nothing_pending(served: Served, api: httpx.Client) -> None:
    """Google connected for mail, and no pending actions left by earlier tests."""
    if api.get("/api/integrations").json()[0]["status"] != "connected":
        connect_http(served, api, ["gmail_read", "gmail_write"])
    for a in api.get("/api/approvals", params={"status": "pending"}).json():
        api.post(f"/api/approvals/{a['id']}/reject", json={"reason": "test set-up"})


def wait_for(check: Any, timeout_s: float = 120.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not hold within {timeout_s} s")


def test_connect_through_the_callback_and_decisions_refused_with_reasons(served: Served) -> None:
    with served.client(60) as api:
        done = connect_http(served, api, ["gmail_read", "gmail_write"])
        assert done.status_code == 303 and "google=connected" in done.headers["location"]
        (google,) = api.get("/api/integrations").json()
        assert google["status"] == "connected" and google["account"] == "owner@example.test"
        assert {f["name"] for f in google["features"] if f["enabled"]} >= {"gmail_read", "gmail_write"}
        replayed = api.get(urlsplit(done.request.url.raw_path.decode()).path + "?" + done.request.url.query.decode(),
                           follow_redirects=False)
        assert "google=failed" in replayed.headers["location"]  # a state is used once

        tid = served.google.add_message(sender="pat@example.test", to="owner@example.test", subject="Quote",
                                        body="Any update?")["threadId"]
        run = api.post("/api/runs", json={"message": REPLY.format(tid)}).json()["run_id"]
        wait_for(lambda: api.get(f"/api/runs/{run}").json()["run"]["status"] == "done", what="the run")
        (action,) = api.get("/api/approvals", params={"run_id": run}).json()
        assert action["status"] == "pending" and action["arguments"]["to"] == ["pat@example.test"]

        wrong = api.post(f"/api/approvals/{action['id']}/approve", json={"args_hash": "f" * 64})
        assert wrong.status_code == 409 and "not what was approved" in wrong.json()["detail"]
        assert api.post("/api/approvals/act_nothing/approve", json={"args_hash": "f" * 64}).status_code == 404
        ok = api.post(f"/api/approvals/{action['id']}/approve", json={"args_hash": action["args_hash"]})
        assert ok.status_code == 200, ok.text
        again = api.post(f"/api/approvals/{action['id']}/approve", json={"args_hash": action["args_hash"]})
        assert again.status_code == 409 and "used once" in again.json()["detail"]
        wait_for(lambda: api.get(f"/api/approvals/{action['id']}").json()["status"] == "done", what="sent")
        assert len([m for m in served.google.sent_messages() if m["threadId"] == tid]) == 1

        app_sql(served.app, "UPDATE actions SET expires_at = 0 WHERE status = 'pending'")
        run2 = api.post("/api/runs", json={"message": REPLY.format(tid)}).json()["run_id"]
        wait_for(lambda: api.get(f"/api/runs/{run2}").json()["run"]["status"] == "done", what="the second run")
        (second,) = api.get("/api/approvals", params={"run_id": run2}).json()
        app_sql(served.app, "UPDATE actions SET expires_at = 0 WHERE id = ?", [second["id"]])
        expired = api.post(f"/api/approvals/{second['id']}/approve", json={"args_hash": second["args_hash"]})
        assert expired.status_code == 410 and "expired" in expired.json()["detail"]

        policy = api.put("/api/approvals/policy", json={"policies": {"send_text": "deny"}}).json()["policies"]
        assert policy["send_text"] == "deny" and policy["send_email"] == "ask"
        audit = api.get("/api/audit", params={"run_id": run}).json()
        assert [e["action"] for e in audit][:2] == ["reply_email.done", "approval.approved"]
        assert audit[0]["approved_by"] == "local" and audit[0]["task_id"] and "message_id" in audit[0]["detail"]


def test_forty_follow_ups_approved_at_once_on_the_approvals_page(served: Served, page: Page,
                                                                  artifacts: Any) -> None:
    fake = served.google
    with served.client(60) as api:
        connected_with_nothing_pending(served, api)
        thread = fake.add_message(sender="webinar@example.test", to="owner@example.test",
                                  subject="Webinar follow-ups", body="Thanks for joining!")["threadId"]
        run = api.post("/api/runs", json={"message": f"[fanout 40 email] {REPLY.format(thread)}"}).json()["run_id"]
        wait_for(lambda: api.get(f"/api/runs/{run}").json()["run"]["status"] == "done", what="the run")
        pending = api.get("/api/approvals", params={"status": "pending"}).json()
        assert len(pending) == 40 and {a["group"] for a in pending} == {f"{run}:reply_email"}
        assert not [m for m in fake.sent_messages() if m["threadId"] == thread]

    go(page, "approvals")
    expect(page.locator("#nav-approvals")).to_contain_text("40")
    group = page.locator("#approvals-group-0")
    expect(group).to_contain_text("Webinar follow-ups")  # a sample of the forty, each shown in full
    expect(group.locator(".act")).to_have_count(3)
    page.screenshot(path=str(artifacts / "approvals.png"), full_page=True)
    page.locator("#approvals-group-0-approve").click()
    expect(page.locator("#approvals-batch-result")).to_contain_text("40")

    def sent() -> list[dict[str, Any]]:
        return [m for m in fake.sent_messages() if m["threadId"] == thread]
    wait_for(lambda: len(sent()) == 40, what="forty replies sent")
    time.sleep(1.0)  # and no more follow
    ids = {a["id"] for a in pending}
    assert len(sent()) == 40 and {m["headers"]["X-Maos-Action"].removeprefix("maos-") for m in sent()} == ids  # each exactly once
    page.get_by_role("tab", name="Audit log").click()
    page.locator("#audit-search").click()
    expect(page.locator("#audit-table")).to_contain_text("reply_email.done")


def test_an_edited_reply_is_sent_as_edited_from_the_approvals_page(served: Served, page: Page) -> None:
    """Review one action, change its subject and body in the edit form under it, save: the edited
    mail is what Google receives, once, and the original is never sent."""
    fake = served.google
    with served.client(60) as api:
        connected_with_nothing_pending(served, api)
        thread = fake.add_message(sender="lee@example.test", to="owner@example.test", subject="Renewal terms",
                                  body="Can we talk about the renewal?")["threadId"]
        run = api.post("/api/runs", json={"message": REPLY.format(thread)}).json()["run_id"]
        wait_for(lambda: api.get(f"/api/runs/{run}").json()["run"]["status"] == "done", what="the run")
        (action,) = api.get("/api/approvals", params={"run_id": run}).json()

    go(page, "approvals")
    page.locator("#approval-pick input").click()
    page.get_by_role("option").filter(has_text=action["id"][:8]).click()
    expect(page.locator("#approval-detail")).to_contain_text("lee@example.test")
    subject = page.locator("#approval-edit-subject").get_by_role("textbox")
    body = page.locator("#approval-edit-body").get_by_role("textbox")
    expect(subject).to_be_visible()
    assert subject.input_value() == action["arguments"]["subject"]
    subject.fill("Renewal: the new terms")
    body.fill("Hi Lee,\n\nThe new terms are attached. Does Thursday suit you?\n")
    page.locator("#approval-save").click()
    expect(page.locator("#approval-result")).to_contain_text("Edited and approved")

    def sent() -> list[dict[str, Any]]:
        return [m for m in fake.sent_messages() if m["threadId"] == thread]
    (mail,) = wait_for(sent, what="the edited reply sent")
    assert mail["subject"] == "Renewal: the new terms" and "Does Thursday suit you?" in mail["body"]
    assert mail["to"] == ["lee@example.test"]
    with served.client(60) as api:
        assert api.get(f"/api/approvals/{action['id']}").json()["status"] == "superseded"  # never sent itself
    time.sleep(1.0)  # and nothing more follows
    assert len(sent()) == 1
