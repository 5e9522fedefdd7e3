"""The UI's memory and feedback handlers against a mocked HTTP API: the requests they send and what
they show for the answers (no Ray, no browser)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest

from core.schemas import Plan, PlanStep, Run, RunView
from ui.client import ApiClient, ApiError
from ui.disclosure import Disclosure, disclosure
from ui.feedback import BLANK_PLAN, FeedbackHandlers, parse_plan, plan_text

Handler = Callable[[httpx.Request], httpx.Response]
PLAN = Plan(goal="follow up", steps=[PlanStep(id="s1", agent="leads", instruction="find the leads")])
DOC = {"id": "d1", "title": "Refunds", "filename": "refunds.md", "kind": "sop", "tags": ["billing"],
       "status": "indexing", "chunks": 4, "chunks_done": 0, "bytes": 120, "created_at": 1.0}
LEARNING = {"run_id": "r1", "request": "m", "plan": PLAN.model_dump(), "outcome": "done", "usable": True,
            "created_at": 1.0, "updated_at": 1.0}


def plan_editor() -> Disclosure:
    with gr.Blocks(), disclosure("Correct the plan", "fb-correct") as editor:
        pass
    return editor


def run_with(handler: Handler, work: Callable[[ApiClient], Any]) -> Any:
    async def go() -> Any:
        client = ApiClient("http://api.test", transport=httpx.MockTransport(handler))
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_upload_sends_a_multipart_form_and_a_refused_file_names_what_is_wrong() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if b"notes.xls" in request.content:
            return httpx.Response(422, json={"error": "ingest", "detail": "notes.xls: unsupported file type"})
        return httpx.Response(202, json={"kind": "upload", "document": DOC, "duplicate": False})

    result = run_with(handler, lambda c: c.upload_document("refunds.md", b"# Refunds\n", "sop", "billing, x"))
    assert result.document.id == "d1" and not result.duplicate
    body, ctype = sent[0].content, sent[0].headers["content-type"]
    assert ctype.startswith("multipart/form-data") and b'filename="refunds.md"' in body
    assert b'name="kind"\r\n\r\nsop' in body and b'name="tags"\r\n\r\nbilling, x' in body
    with pytest.raises(ApiError) as caught:
        run_with(handler, lambda c: c.upload_document("notes.xls", b"x"))
    assert caught.value.status == 422 and caught.value.detail == "notes.xls: unsupported file type"


def test_delete_answers_nothing_and_search_passes_its_filters() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        return httpx.Response(204) if request.method == "DELETE" else httpx.Response(200, json=[])

    assert run_with(handler, lambda c: c.delete_document("d1")) is None
    assert run_with(handler, lambda c: c.search_memory("refunds", "sops", 5)) == []
    assert seen == ["DELETE /api/documents/d1?", "GET /api/memory/search?q=refunds&collection=sops&limit=5"]


def test_an_upload_is_followed_until_it_is_indexed(tmp_path: Path) -> None:
    from ui.memory import MemoryHandlers

    polls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST":
            return httpx.Response(202, json={"kind": "upload", "document": DOC, "duplicate": False})
        if path == "/api/documents/d1":
            polls["n"] += 1
            state = {"status": "ready", "chunks_done": 4} if polls["n"] >= 3 else {"chunks_done": polls["n"]}
            return httpx.Response(200, json={"kind": "document_view", "document": DOC | state, "content": "x"})
        if path == "/api/documents":
            return httpx.Response(200, json=[DOC | {"status": "ready", "chunks_done": 4}])
        return httpx.Response(200, json={"kind": "memory_stats", "embedder": "e", "vector_store": "v",
                                         "collections": {"sops": 4}})

    file = tmp_path / "refunds.md"
    file.write_text("# Refunds\nWithin 30 days.")

    async def follow(client: ApiClient) -> list[str]:
        handlers = MemoryHandlers(client, poll_s=0.0)
        return [frame[0] async for frame in handlers.upload(str(file), "sop", "billing", "", "Any")]

    states = run_with(handler, follow)
    assert 'data-status="indexing"' in states[0] and "0 of 4 pieces" in states[0]
    assert "1 of 4 pieces" in states[1] and "2 of 4 pieces" in states[2]
    assert 'data-status="ready"' in states[-1] and "4 pieces" in states[-1]
    assert all('data-status="indexing"' in s for s in states[:-1])


def test_a_corrected_plan_is_checked_here_first_then_by_the_server() -> None:
    with pytest.raises(ValueError, match=r"not valid JSON \(line 1"):
        parse_plan('{"goal": ')
    with pytest.raises(ValueError, match=r"steps.0.instruction: Field required"):
        parse_plan('{"goal": "g", "steps": [{"id": "s1", "agent": "leads"}]}')
    assert parse_plan(plan_text(PLAN)) == PLAN and plan_text(None) == BLANK_PLAN

    posted: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        posted.append(body)
        if body["correction"] and body["correction"]["steps"][0]["agent"] == "emial":
            return httpx.Response(422, json={"detail": "unknown agent type 'emial' in step s1; known: email, leads"})
        return httpx.Response(200, json=LEARNING | {k: v for k, v in body.items() if v is not None})

    editor = plan_editor()

    async def flow(client: ApiClient) -> list[Any]:
        h = FeedbackHandlers(client, editor)
        learned, note, *_ = await h.rate("down", "r1", None)
        out: list[Any] = [note]
        same = await h.save("r1", plan_text(PLAN), plan_text(PLAN), "", learned)  # unchanged: no correction
        out.append(same[1])
        wrong = PLAN.model_copy(update={"steps": [PLAN.steps[0].model_copy(update={"agent": "emial"})]})
        out.append((await h.save("r1", plan_text(wrong), plan_text(PLAN), "", learned))[1])
        fixed = PLAN.model_copy(update={"goal": "follow up by email"})
        saved, note = await h.save("r1", plan_text(fixed), plan_text(PLAN), " use email ", learned)
        out.append(note)
        learned, note, *_ = await h.rate("up", "r1", saved)  # a new rating keeps the correction and comment
        return out

    notes = run_with(handler, flow)
    assert notes[0].startswith("✔ Saved: rated bad · plan as made")
    assert notes[1].startswith("✔ Saved: rated bad · plan as made")
    assert notes[2] == "✖ Not saved: unknown agent type 'emial' in step s1; known: email, leads"
    assert notes[3].startswith("✔ Saved: rated bad · plan corrected · comment kept")
    assert [p["rating"] for p in posted] == ["down", "down", "down", "down", "up"]
    assert posted[1]["correction"] is None and posted[3]["correction"]["goal"] == "follow up by email"
    assert posted[3]["comment"] == "use email"
    assert posted[4]["correction"]["goal"] == "follow up by email" and posted[4]["comment"] == "use email"


def test_a_finished_run_shows_the_form_with_its_plan_and_the_editor_closed() -> None:
    """The editor is rendered with the form and only shown or hidden (see ui.disclosure): the handler that
    reveals the form puts it in its closed state; opening and closing it is a toggle."""
    run = Run(id="r1", conversation_id="c1", user_id="local", message="m", status="done", plan=PLAN,
              created_at=1.0, updated_at=2.0, finished_at=2.0)
    corrected = PLAN.model_copy(update={"goal": "follow up by email"})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/learning"):
            return httpx.Response(200, json=LEARNING | {"rating": "up", "correction": corrected.model_dump()})
        unfinished = run.model_copy(update={"finished_at": None, "status": "running"})
        body = RunView(run=run if request.url.path == "/api/runs/r1" else unfinished)
        return httpx.Response(200, json=body.model_dump(mode="json"))

    editor = plan_editor()

    async def flow(client: ApiClient) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        h = FeedbackHandlers(client, editor)
        return await h.prepare("r1"), await h.prepare("r2")

    shown, running = run_with(handler, flow)
    box, plan, original, learned, note, up, down, comment, section, is_open, button = shown
    assert box.visible is True and plan == plan_text(corrected) and original == plan_text(PLAN)
    assert learned["rating"] == "up" and "plan corrected" in note and up.variant == "primary"
    assert section.visible == "hidden" and is_open is False and button.value == "▸ Correct the plan"
    assert running[0].visible is False and len(running) == len(shown)  # an unfinished run: no form
    assert all(part == gr.skip() for part in running[-3:])

    section, is_open, button = editor.toggle(is_open)
    assert section.visible is True and is_open is True and button.value == "▾ Correct the plan"
    assert editor.toggle(is_open)[0].visible == "hidden"
