"""The Memory page and the chat's sources and feedback, in headless Chromium against the real API:
upload an SOP, watch it index, find it, ask about it in chat, see it as a source, rate and correct
the plan, and delete it again."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Served, go

TITLE = "Refund procedure for Quokka Outfitters"
SOP = f"""# {TITLE}

## Eligibility
Customers of Quokka Outfitters can get a full refund within 30 days of delivery when the goods are unused.
Items bought on clearance are exchanged, never refunded.

## Approval
Refunds over $500 need approval from the finance lead, Priya Natarajan, before any money moves.
Smaller refunds are approved by the support agent who handles the ticket.

## Paying back
Refunds go back to the original payment method within 5 business days; send the customer a confirmation email.
"""
MESSAGE = "[fanout 2] handle the refund request over $500 from a Quokka Outfitters customer"


def poll(fetch: Any, ok: Any, what: str, within_s: float = 60.0) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        got = fetch()
        if ok(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {got!r} after {within_s:.0f} s")
        time.sleep(0.2)


def upload(page: Page, path: Path) -> None:
    page.locator("#memory-file input[type=file]").set_input_files(str(path))
    expect(page.locator("#memory-file")).to_contain_text(path.name)  # in the page before it is sent
    page.locator("#memory-upload").click()


def sources_and_feedback(page: Page, api: httpx.Client, doc_id: str, artifacts: Path) -> None:
    """Ask about the SOP; it shows under the answer as a source; rate and correct the plan."""
    page.locator("#chat-input textarea").fill(MESSAGE)
    page.locator("#chat-input textarea").press("Enter")
    expect(page.locator('#plan-checklist[data-state="ended"]')).to_be_visible()
    sources = page.locator("#chat-sources")
    expect(sources).to_contain_text("Sources")
    used = sources.locator(f'.source[data-collection="sops"][data-source="{doc_id}"]').first
    expect(used).to_contain_text(TITLE)
    expect(used.locator("a.src-title")).to_have_attribute("href", f"/?doc={doc_id}")
    expect(used.locator("a.src-api")).to_have_attribute("href", f"/api/documents/{doc_id}")

    found = api.get("/api/conversations", params={"q": "Quokka Outfitters"}).json()
    run_id = api.get(f"/api/conversations/{found[0]['id']}").json()["runs"][-1]["id"]
    run = api.get(f"/api/runs/{run_id}").json()
    assert any(s["source_id"] == doc_id for s in run["sources"]), run["sources"]
    poll(lambda: api.get(f"/api/runs/{run_id}/learning").status_code, lambda c: c == 200, "the run's learning")

    expect(page.locator("#feedback")).to_be_visible()
    page.locator("#fb-up").click()
    expect(page.locator("#fb-result")).to_contain_text("rated good")
    page.locator("#fb-correct").click()
    box = page.locator("#fb-plan textarea")
    plan = json.loads(box.input_value())
    assert plan == run["run"]["plan"]  # prefilled with the run's plan

    plan["steps"][0]["agent"] = "emial"
    box.fill(json.dumps(plan, indent=2))
    page.locator("#fb-save").click()
    expect(page.locator("#fb-result")).to_contain_text("Not saved")
    expect(page.locator("#fb-result")).to_contain_text("emial")
    assert api.get(f"/api/runs/{run_id}/learning").json()["correction"] is None

    plan["steps"][0]["agent"] = "sops"
    plan["goal"] = "Refund over $500: get Priya Natarajan's approval first"
    box.fill(json.dumps(plan, indent=2))
    page.locator("#fb-comment textarea").fill("big refunds need the finance lead")
    page.locator("#fb-save").click()
    expect(page.locator("#fb-result")).to_contain_text("plan corrected")
    learned = api.get(f"/api/runs/{run_id}/learning").json()
    assert learned["rating"] == "up" and learned["usable"] is True
    assert learned["correction"]["goal"] == plan["goal"] and learned["correction"]["steps"][0]["agent"] == "sops"
    assert learned["comment"] == "big refunds need the finance lead"
    page.locator("#chat-sources").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "chat-sources-feedback.png"), full_page=True)


def test_memory_page_and_chat_sources_and_feedback(served: Served, artifacts: Path, page: Page,
                                                   tmp_path: Path) -> None:
    sop, empty = tmp_path / "refund-procedure.md", tmp_path / "empty.txt"
    sop.write_text(SOP)
    empty.write_text("")
    with served.client(30) as api:
        go(page, "memory")
        expect(page.locator("#memory-stats")).to_contain_text("embedder")

        # A file that cannot be stored is refused, naming the file; nothing is stored.
        upload(page, empty)
        expect(page.locator('#memory-upload-state [data-status="refused"]')).to_contain_text("empty.txt")
        assert not [d for d in api.get("/api/documents").json() if d["filename"] == "empty.txt"]

        # Upload the SOP with kind and tags; it indexes, then shows in the list.
        page.locator("#memory-kind label").filter(has_text="SOP").click()
        page.locator("#memory-tags textarea").fill("billing, refunds")
        upload(page, sop)
        expect(page.locator('#memory-upload-state [data-status="ready"]')).to_contain_text(TITLE)
        docs = [d for d in api.get("/api/documents", params={"kind": "sop"}).json() if d["title"] == TITLE]
        assert len(docs) == 1 and docs[0]["status"] == "ready" and docs[0]["tags"] == ["billing", "refunds", "sop"], docs
        doc_id = docs[0]["id"]
        try:
            expect(page.locator("#memory-docs")).to_contain_text(TITLE)
            expect(page.locator("#memory-stats [data-collection=sops] b")).not_to_have_text("0")

            # The same file again is recognised as a duplicate.
            upload(page, sop)
            expect(page.locator('#memory-upload-state [data-status="duplicate"]')).to_contain_text("already")

            # Search shows what memory returns; selecting the row opens the document.
            page.locator("#memory-q textarea").fill("who approves refunds over $500?")
            page.locator("#memory-search").click()
            hit = page.locator(f'#memory-results .source[data-source="{doc_id}"]').first
            expect(hit).to_contain_text("Priya Natarajan")
            page.locator("#memory-docs [role=gridcell]").filter(has_text=TITLE).first.click()
            expect(page.locator("#memory-viewer")).to_contain_text("finance lead, Priya Natarajan")
            page.screenshot(path=str(artifacts / "memory.png"), full_page=True)

            go(page, "chat")
            sources_and_feedback(page, api, doc_id, artifacts)

            # A source's link opens the Memory page on that document.
            page.goto(f"{served.base_url}/?doc={doc_id}")
            expect(page.locator("#page-memory")).to_be_visible()
            expect(page.locator("#memory-viewer")).to_contain_text("Paying back")

            # Delete it: gone from the list, the API and the search.
            page.locator("#memory-docs [role=gridcell]").filter(has_text=TITLE).first.click()
            page.locator("#memory-delete").click()
            expect(page.locator("#memory-docs-note")).to_contain_text("Deleted")
            expect(page.locator("#memory-docs")).not_to_contain_text(TITLE)
            assert api.get(f"/api/documents/{doc_id}").status_code == 404
            page.locator("#memory-search").click()
            expect(page.locator("#memory-results")).not_to_contain_text(TITLE)
        finally:
            api.delete(f"/api/documents/{doc_id}")
