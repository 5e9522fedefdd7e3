"""The web UI in headless Chromium: chat with a live plan, History, Agents, Integrations, Settings."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WAIT_MS, Served, go

ONE_FOUND = re.compile(r"(?<!\d)1 conversation")  # not "21 conversation(s)"
MESSAGE = "[fanout 3] [slow 0.5] follow up with every lead tagged webinar from the quokka campaign"


def chat_until_done(page: Page, api: httpx.Client) -> str:
    """Send the message; the checklist goes live and every step reaches done; returns the title."""
    page.locator("#chat-input textarea").fill(MESSAGE)
    page.locator("#chat-input textarea").press("Enter")
    expect(page.locator("#chatbot .message.user")).to_contain_text("quokka campaign")
    steps = page.locator("#plan .step")
    expect(steps).to_have_count(3, timeout=WAIT_MS)
    expect(page.locator('#plan .step[data-status="running"]').first).to_be_visible()  # live, not after the fact
    expect(page.locator('#plan .step[data-status="done"]')).to_have_count(3, timeout=WAIT_MS)
    expect(page.locator('#plan-checklist[data-state="ended"]')).to_be_visible(timeout=WAIT_MS)

    found = api.get("/api/conversations", params={"q": "quokka"}).json()
    assert len(found) == 1 and found[0]["last_status"] == "done", found
    view = api.get(f"/api/conversations/{found[0]['id']}").json()
    summary = view["messages"][-1]["content"]
    assert view["messages"][-1]["role"] == "assistant" and summary
    expect(page.locator("#chatbot .message.bot").last).to_contain_text(summary.split()[0])
    expect(page.locator("#chatbot .message.bot").last).not_to_contain_text("◐")

    first = page.locator('#plan .step[data-step="s1"]')
    first.locator("summary").click()
    expect(first.locator(".step-out")).to_be_visible()
    expect(first.locator(".meta")).to_contain_text("attempt 1")
    return str(found[0]["title"])


def test_chat_history_agents_settings_in_a_real_browser(served: Served, artifacts: Path, page: Page) -> None:
    with served.client(30) as api:
        llm = api.get("/api/status").json()
        expect(page.locator("#sidebar-llm")).to_contain_text(llm["llm_models"]["planner"])
        expect(page.locator("#sidebar-llm")).to_contain_text(llm["llm_provider"])

        title = chat_until_done(page, api)
        page.screenshot(path=str(artifacts / "chat.png"))

        # History: search, open the record, continue it in the chat.
        go(page, "history")
        page.locator("#history-q textarea").fill("quokka")
        page.locator("#history-search").click()
        expect(page.locator("#history-note")).to_contain_text(ONE_FOUND)
        page.locator("#history-results [role=gridcell]").filter(has_text=title[:30]).first.click()
        record = page.locator("#history-record")
        expect(record).to_contain_text("Messages")
        expect(record).to_contain_text("quokka campaign")
        expect(record.locator("table.rec-table tbody tr")).to_have_count(3)
        page.screenshot(path=str(artifacts / "history.png"))
        page.locator("#history-continue").click()
        expect(page.locator("#page-chat")).to_be_visible()
        expect(page.locator("#chatbot .message.user")).to_contain_text("quokka campaign")
        expect(page.locator('#plan .step[data-status="done"]')).to_have_count(3)

        # Agents and Integrations: live views of the pools and of the LLM backend.
        go(page, "agents")
        expect(page.locator("#agents-pools")).to_contain_text("leads")
        expect(page.locator("#agents-totals")).to_contain_text("in flight")
        expect(page.locator("#agents-machines")).to_contain_text("head · alive")
        go(page, "integrations")
        expect(page.locator("#integrations-llm")).to_contain_text(llm["llm_base_url"])
        expect(page.locator("#google-status")).to_contain_text(re.compile("Not connected|Connected as"))

        # Settings: change one, see it saved and in the API; a bad value is refused naming the field.
        before = api.get("/api/settings").json()["values"]["max_turns"]
        changed = before + 1 if before < 100 else before - 1
        go(page, "settings")
        turns = page.locator("#set-max_turns input")
        expect(turns).to_have_value(str(before))
        page.locator("#settings-test").click()
        expect(page.locator("#settings-test-result")).to_contain_text("✔ Answered")
        try:
            turns.fill(str(changed))
            page.locator("#settings-save").click()
            expect(page.locator("#settings-result")).to_contain_text("Saved max_turns")
            expect(page.locator("#settings-result")).to_contain_text("applied now")
            assert api.get("/api/settings").json()["values"]["max_turns"] == changed

            turns.fill("500")
            page.locator("#settings-save").click()
            expect(page.locator("#settings-result")).to_contain_text("Not saved")
            expect(page.locator("#settings-result")).to_contain_text("max_turns")
            assert api.get("/api/settings").json()["values"]["max_turns"] == changed
            page.screenshot(path=str(artifacts / "settings.png"))

            turns.fill(str(before))
            page.locator("#settings-save").click()
            expect(page.locator("#settings-result")).to_contain_text("Saved max_turns")
        finally:
            api.patch("/api/settings", json={"max_turns": before})
        assert api.get("/api/settings").json()["values"]["max_turns"] == before


def test_a_run_goes_on_when_the_tab_closes_and_reopening_follows_it(served: Served, page: Page) -> None:
    page.locator("#chat-input textarea").fill("[fanout 2] [slow 12] research the wombat market")
    page.locator("#chat-input textarea").press("Enter")
    expect(page.locator('#plan .step[data-status="running"]').first).to_be_visible()
    page.goto("about:blank")  # the tab goes away mid-run

    page.goto(f"{served.base_url}/")
    go(page, "history")
    page.locator("#history-q textarea").fill("wombat")
    page.locator("#history-search").click()
    expect(page.locator("#history-note")).to_contain_text(ONE_FOUND)
    page.locator("#history-results [role=gridcell]").filter(has_text="wombat").first.click()
    expect(page.locator("#history-record")).to_contain_text("still going")
    page.locator("#history-continue").click()
    expect(page.locator("#page-chat")).to_be_visible()
    expect(page.locator("#chatbot .message.user")).to_contain_text("wombat market")
    # Still going when it reopens (the progress mark, whichever phase the run is in), then followed live.
    expect(page.locator("#chatbot .message.bot").last).to_contain_text("◐")
    expect(page.locator('#plan .step[data-status="done"]')).to_have_count(2)
    expect(page.locator('#plan-checklist[data-state="ended"]')).to_be_visible()
    expect(page.locator("#chatbot .message.bot").last).not_to_contain_text("◐")
    with served.client(30) as api:
        found = api.get("/api/conversations", params={"q": "wombat"}).json()
        assert [c["last_status"] for c in found] == ["done"]
