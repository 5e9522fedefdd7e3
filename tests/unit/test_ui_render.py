"""The web UI's pure parts: run events folded into a checklist and a reply, history values,
settings diffs, and the API client's event stream resuming with Last-Event-ID (no Ray, no browser)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from core.schemas import Draft, Plan, PlanStep, RunEvent
from ui import token_check
from ui.client import ApiClient, ApiError
from ui.progress import RunProgress
from ui.render import bubble, drafts_html, normalise_history, plan_html
from ui.views import changed_settings, since_for


def ev(seq: int, kind: str, **fields: Any) -> RunEvent:
    return RunEvent(kind=kind, run_id="r1", seq=seq, at=100.0 + seq, **fields)  # type: ignore[arg-type]


PLAN = Plan(goal="follow up with <leads>", steps=[
    PlanStep(id="s1", agent="leads", instruction="find the leads"),
    PlanStep(id="s2", agent="email", instruction="write to them", depends_on=["s1"]),
])


def test_events_fold_into_a_live_checklist_and_a_streaming_reply() -> None:
    p = RunProgress("r1")
    p.apply(ev(1, "status", status="planning"))
    p.apply(ev(2, "token", phase="plan", text='{"goal": '))
    assert bubble(p) == "◐ Planning (9 characters so far)…"
    for e in [ev(3, "plan", plan=PLAN), ev(4, "status", status="running"),
              ev(5, "task", status="running", step_id="s1", agent="leads", attempt=1),
              ev(6, "task", status="done", step_id="s1", agent="leads", attempt=1, text="3 leads <found>"),
              ev(7, "task", status="failed", step_id="s2", agent="email", attempt=1, error="smtp down"),
              ev(5, "task", status="running", step_id="s1", agent="leads", attempt=1)]:  # a replay: ignored
        p.apply(e)
    assert bubble(p) == "◐ Working: 1 of 2 steps done."
    html = plan_html(p, now=120.0)
    assert html.count('class="step"') == 2 and 'data-state="live"' in html
    assert 'data-step="s1" data-status="done"' in html and "✔" in html and "1.0 s · attempt 1" in html
    assert "3 leads &lt;found&gt;" in html and "&lt;leads&gt;" in html  # text is escaped
    assert 'data-step="s2" data-status="failed"' in html and "retrying" in html and "smtp down" in html

    p.apply(ev(8, "task", status="running", step_id="s2", agent="email", attempt=2))
    p.apply(ev(9, "task", status="done", step_id="s2", agent="email", attempt=2, text="sent 3 drafts"))
    p.apply(ev(10, "status", status="summarizing"))
    p.apply(ev(11, "token", phase="summary", text="All three"))
    assert bubble(p) == "All three ▍"
    p.apply(ev(12, "summary", text="All three leads have drafts."))
    p.apply(ev(13, "end", status="done"))
    assert not p.active and p.last_seq == 13 and p.counts() == (2, 2)
    assert bubble(p) == "All three leads have drafts."
    html = plan_html(p, now=999.0)
    assert 'data-state="ended"' in html and "attempt 2" in html and html.count('data-status="done"') == 2


def test_a_failed_run_says_why_and_an_empty_plan_says_what_comes() -> None:
    p = RunProgress("r1")
    p.apply(ev(1, "status", status="planning"))
    p.apply(ev(2, "end", status="failed", error="plan invalid: unknown agent type 'emial'"))
    assert bubble(p).startswith("✖ The run failed: plan invalid")
    assert "No plan: plan invalid" in plan_html(p)
    assert "plan appears here" in plan_html(None)


def test_chat_history_from_gradio_parts_and_drafts_marked_not_sent() -> None:
    value = [{"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]},
             {"role": "assistant", "content": "hello", "metadata": None}, {"role": "system", "content": "x"}]
    assert normalise_history(value) == [{"role": "user", "content": "hi there"},
                                        {"role": "assistant", "content": "hello"}]
    html = drafts_html([Draft(id="d1", task_id="r1:s2", channel="email", target="ann@example.com",
                              subject="Webinar", body="Hi <Ann>", created_at=1.0)])
    assert "draft · not sent" in html and "nothing was sent" in html and "Hi &lt;Ann&gt;" in html
    assert drafts_html([]) == ""


def test_settings_diff_sends_only_what_changed() -> None:
    saved = {"max_turns": 6, "llm_model": "m", "stream_replies": True, "run_deadline_s": 3600.0, "llm_worker_model": None}
    form = {"max_turns": 7.0, "llm_model": " m ", "stream_replies": False, "run_deadline_s": 3600, "llm_worker_model": ""}
    assert changed_settings(form, saved) == {"max_turns": 7, "stream_replies": False}
    assert since_for("Any time", 1000.0) is None and since_for("Today", 100_000.0) == 100_000.0 - 86_400


def sse_body(*events: RunEvent) -> bytes:
    return "".join(f"id: {e.seq}\nevent: {e.kind}\ndata: {e.model_dump_json(exclude_none=True)}\n\n"
                   for e in events).encode() + b": keep-alive\n\n"


def test_a_dropped_event_stream_resumes_after_the_last_event_seen() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("last-event-id"))
        if len(seen) == 1:  # the connection drops after two events, before ``end``
            return httpx.Response(200, content=sse_body(ev(1, "status", status="planning"), ev(2, "plan", plan=PLAN)))
        return httpx.Response(200, content=sse_body(ev(3, "end", status="done")))

    async def follow() -> list[int]:
        client = ApiClient("http://api.test", transport=httpx.MockTransport(handler), retry_delay_s=0.0)
        try:
            return [e.seq async for e in client.run_events("r1")]
        finally:
            await client.aclose()

    assert asyncio.run(follow()) == [1, 2, 3]
    assert seen == ["0", "2"]


def test_api_errors_carry_the_detail_naming_the_field() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"max_turns": 500}
        assert request.headers["authorization"] == "Bearer s3cret"  # the UI logs in to a token-guarded API
        return httpx.Response(422, json={"detail": "max_turns: Input should be less than or equal to 100"})

    async def patch() -> None:
        client = ApiClient("http://api.test", "s3cret", transport=httpx.MockTransport(handler))
        try:
            await client.update_settings({"max_turns": 500})
        finally:
            await client.aclose()

    with pytest.raises(ApiError) as caught:
        asyncio.run(patch())
    assert caught.value.status == 422 and caught.value.detail.startswith("max_turns:")


def test_the_ui_login_takes_the_api_token_as_password() -> None:
    check = token_check("s3cret")
    assert check("anyone", "s3cret") and not check("anyone", "s3cre") and not check("s3cret", "")


def test_following_a_run_coalesces_updates_and_ends_with_the_whole_outputs() -> None:
    events = [ev(1, "status", status="planning"), *(ev(i, "token", phase="plan", text="x") for i in range(2, 40)),
              ev(40, "plan", plan=PLAN), ev(41, "task", status="done", step_id="s1", agent="leads", text="ex"),
              ev(42, "task", status="done", step_id="s2", agent="email", text="ex"),
              ev(43, "summary", text="Done: two steps."), ev(44, "end", status="done")]
    task = {"id": "r1:s1", "run_id": "r1", "step_id": "s1", "agent": "leads", "instruction": "find the leads",
            "status": "done", "attempts": 1, "result": "the whole output", "idempotency_key": "k",
            "created_at": 1.0, "updated_at": 2.0, "started_at": 1.0, "finished_at": 2.0}
    run = {"id": "r1", "conversation_id": "c1", "user_id": "u", "message": "m", "status": "done",
           "created_at": 1.0, "updated_at": 2.0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(200, content=sse_body(*events))
        if request.url.path.endswith("/drafts"):
            return httpx.Response(200, json=[])
        return httpx.Response(200, json={"kind": "run_view", "run": run, "tasks": [task]})

    async def follow() -> list[tuple[list[dict[str, str]], str, str]]:
        from ui.chat import ChatHandlers

        client = ApiClient("http://api.test", transport=httpx.MockTransport(handler))
        history = [{"role": "user", "content": "m"}, {"role": "assistant", "content": ""}]
        try:
            return [(list(map(dict, h)), plan, drafts)
                    async for h, plan, drafts in ChatHandlers(client).follow("r1", history, reply=True)]
        finally:
            await client.aclose()

    frames = asyncio.run(follow())
    assert 2 <= len(frames) < len(events)  # a burst of tokens is not one browser update each
    history, plan, _ = frames[-1]
    assert history[-1]["content"] == "Done: two steps."
    assert plan.count('data-status="done"') == 2 and "the whole output" in plan
