"""Long-term memory in the running app: SOPs reach the plan and its sources, dedup, delete,
per-user isolation, rebuild from DuckDB, feedback becoming the next example, bad files."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from actors import runtime
from core.errors import IngestError
from core.memory_schemas import DocumentView, Feedback, UploadResult
from core.schemas import Plan, PlanStep
from integrations.llm.sim_thread import SimHandle
from memory.finetune import examples
from tests.integration.conftest import ask, wait_run

REFUND_SOP = b"""# Refund procedure

## Small refunds
Support agents may refund orders under 500 dollars directly in the billing tool and note the ticket number.

## Large refunds
A refund above 500 dollars needs written approval from Priya Raman in finance before any money is returned.
Send her the order number, the amount and the reason. She answers within two business days.
"""
ONBOARDING = b"""# Onboarding a new client

Every new client gets a kickoff call in their first week. The account manager sends the welcome pack,
which contains the service agreement, the invoice schedule and the support hours (8am to 6pm, Monday to Friday).
"""


def upload(app: runtime.App, user: str, name: str, data: bytes, kind: str = "doc") -> UploadResult:
    result: UploadResult = app.memory.get("ingest", user, name, data, kind, ["test"], timeout=120)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        view: DocumentView = app.store.get("get_document", user, result.document.id, timeout=30)
        if view.document.status != "indexing":
            assert view.document.status == "ready", view.document
            assert view.document.chunks_done == view.document.chunks > 0
            return result
        time.sleep(0.05)
    raise AssertionError("the upload was not indexed in time")


def search(app: runtime.App, user: str, query: str, limit: int = 5) -> list[Any]:
    return app.memory.get("search", user, query, None, limit, timeout=60)  # type: ignore[no-any-return]


def requests_to(sim: SimHandle, kind: str) -> list[list[dict[str, Any]]]:
    """The messages of every logged request of a kind (plan, tool_call, final, chat)."""
    return [r["body"]["messages"] for r in sim.log() if r["kind"] == kind and r["body"] is not None]


def entries(app: runtime.App, source_id: str) -> int:
    return int(app.store.get("read", "SELECT count(*) FROM memory_entries WHERE source_id = ?", [source_id],
                             timeout=30)[0][0])


def test_a_fact_only_in_an_sop_reaches_the_plan_the_step_and_the_sources(
        make_app: Callable[..., runtime.App], sim: SimHandle) -> None:
    app = make_app()
    sim.update(log_bodies=True)
    sop = upload(app, "u1", "refunds.md", REFUND_SOP, "sop").document
    upload(app, "u1", "onboarding.md", ONBOARDING)

    view = wait_run(app, ask(app, "What is our procedure for a customer refund of 800 dollars?"))
    assert view.run.status == "done", view.run

    plan_system = requests_to(sim, "plan")[0][0]
    assert plan_system["role"] == "system"
    assert "Priya Raman" in plan_system["content"]  # only the SOP says who approves large refunds
    step_systems = [m[0]["content"] for m in requests_to(sim, "tool_call")]
    assert any("Priya Raman" in s for s in step_systems), "the sops step was not given the SOP"

    by_source = {(s.collection, s.source_id): s for s in view.sources}
    refund = by_source[("sops", sop.id)]
    assert refund.link == f"/api/documents/{sop.id}" and refund.title == "Refund procedure"
    assert view.sources == sorted(view.sources, key=lambda s: -s.score)
    events = app.store.get("run_events", view.run.id, 0, 0.0, 1000, timeout=30)
    assert any(e.kind == "memory" and e.sources for e in events)

    # A pool asks for a whole batch of steps at once: each step gets the memories for its own instruction.
    steps = [("Who approves a refund of 800 dollars?", "r-batch", "r-batch:s1"), ("  ", "r-batch", "r-batch:s2"),
             ("What does the welcome pack for a new client contain?", "r-batch", "r-batch:s3")]
    refund_text, blank, welcome = app.memory.get("step_contexts", "u1", "sops", steps, timeout=60)
    assert "Priya Raman" in refund_text and blank == "" and "service agreement" in welcome
    assert app.memory.get("step_contexts", "u2", "sops", steps, timeout=60) == ["", "", ""]  # not u1's


def test_dedup_isolation_delete_and_rebuild(make_app: Callable[..., runtime.App]) -> None:
    app = make_app()
    first = upload(app, "u1", "refunds.md", REFUND_SOP, "sop")
    again: UploadResult = app.memory.get("ingest", "u1", "refunds-copy.md", REFUND_SOP, "sop", [], timeout=60)
    assert again.duplicate and again.document.id == first.document.id
    assert entries(app, first.document.id) == first.document.chunks  # nothing added twice
    theirs = upload(app, "u2", "refunds.md", REFUND_SOP, "sop")  # the same file is new for another user
    assert not theirs.duplicate and theirs.document.id != first.document.id
    onboarding = upload(app, "u2", "onboarding.md", ONBOARDING)

    mine = search(app, "u1", "who approves a large refund?")
    assert mine and {s.source_id for s in mine} == {first.document.id}
    assert not any(s.source_id == onboarding.document.id for s in search(app, "u1", "kickoff call welcome pack"))
    assert {s.source_id for s in search(app, "u2", "who approves a large refund?")} <= {
        theirs.document.id, onboarding.document.id}

    queries = ["who approves a large refund?", "support hours", "welcome pack for clients"]
    before = {(u, q): [(s.source_id, s.heading, round(s.score, 3)) for s in search(app, u, q)]
              for u in ("u1", "u2") for q in queries}
    counts = app.memory.get("rebuild", timeout=300)
    assert counts["sops"] == first.document.chunks + theirs.document.chunks
    after = {(u, q): [(s.source_id, s.heading, round(s.score, 3)) for s in search(app, u, q)]
             for u in ("u1", "u2") for q in queries}
    assert after == before

    app.memory.get("delete_document", "u1", first.document.id, timeout=60)
    assert search(app, "u1", "who approves a large refund?") == []
    assert entries(app, first.document.id) == 0
    assert app.store.get("get_document", "u1", first.document.id, timeout=30) is None
    assert search(app, "u2", "who approves a large refund?")  # the other user's copy stays


def test_an_upload_cut_off_by_a_crash_is_finished_by_the_restarted_actor(
        make_app: Callable[..., runtime.App]) -> None:
    app = make_app()
    sections = [f"## Clause {i}\n\nClause {i} of the supplier handbook: deliveries to warehouse {i} are booked "
                f"{i % 7 + 1} days ahead, pallets are wrapped twice and the driver calls dock {i % 13} first."
                for i in range(300)]
    data = ("# Supplier handbook\n\n" + "\n\n".join(sections)).encode()
    doc = app.memory.get("ingest", "u1", "handbook.md", data, "doc", [], timeout=60).document
    assert doc.chunks >= 300 and doc.status == "indexing"
    deadline = time.monotonic() + 60
    while app.store.get("get_document", "u1", doc.id, timeout=30).document.chunks_done == 0:
        assert time.monotonic() < deadline, "indexing did not start"
        time.sleep(0.02)
    runtime.kill_actor(app.memory)  # like a crash; Ray restarts it

    deadline = time.monotonic() + 180  # nothing calls the memory actor: it resumes on its own
    while (view := app.store.get("get_document", "u1", doc.id, timeout=30)).document.status == "indexing":
        assert time.monotonic() < deadline, view.document
        time.sleep(0.2)
    assert view.document.status == "ready" and view.document.chunks_done == doc.chunks
    assert entries(app, doc.id) == doc.chunks  # the cut-off attempt left nothing behind
    hits = search(app, "u1", "how many days ahead are deliveries to warehouse 123 booked?")
    assert hits and hits[0].source_id == doc.id


def test_a_new_embedder_re_embeds_what_memory_holds(make_app: Callable[..., runtime.App], tmp_path: Any) -> None:
    first = make_app(tmp_path / "shared")
    doc = upload(first, "u1", "onboarding.md", ONBOARDING).document
    runtime.kill_app(first)
    app = make_app(tmp_path / "shared", embedder="ollama", embedding_model="sim-embed")  # other vector size
    deadline = time.monotonic() + 120
    while not (hits := search(app, "u1", "welcome pack service agreement invoice schedule")):
        assert time.monotonic() < deadline, "memory was not re-embedded"
        time.sleep(0.2)
    assert hits[0].source_id == doc.id
    stats = app.memory.get("stats", "u1", timeout=30)
    assert stats.embedder == "ollama/sim-embed" and stats.collections["documents"] == doc.chunks
    models = app.store.get("read", "SELECT DISTINCT embedding_model FROM memory_entries", timeout=30)
    assert models == [("ollama/sim-embed",)]


def test_a_bad_file_gets_a_clear_error_and_nothing_is_stored(make_app: Callable[..., runtime.App]) -> None:
    app = make_app()  # one app for the four files: an app start is most of this test's time
    for name, data, why in [("empty.txt", b"", "empty"),
                            ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "pdf"),
                            ("notes.exe", b"MZ\x90\x00", "supported"),
                            ("blank.md", b"   \n\n  \n", "empty")]:
        with pytest.raises(IngestError) as err:
            app.memory.get("ingest", "u1", name, data, "doc", [], timeout=60)
        assert name in str(err.value) and why in str(err.value).lower()
        assert app.store.get("read", "SELECT count(*) FROM documents", timeout=30)[0][0] == 0
        assert app.store.get("read", "SELECT count(*) FROM memory_entries", timeout=30)[0][0] == 0


def test_a_correction_is_the_next_example_and_the_export_has_it_not_the_rejected_plan(
        make_app: Callable[..., runtime.App], sim: SimHandle) -> None:
    app = make_app()
    sim.update(log_bodies=True)
    first = wait_run(app, ask(app, "research the wombat market in Tasmania"))
    assert first.run.status == "done" and first.run.plan is not None
    rejected = first.run.plan.model_dump_json()
    corrected = Plan(goal="A brief on the Tasmanian wombat market", steps=[
        PlanStep(id="s1", agent="research", instruction="Collect stored notes on wombat breeders in Tasmania"),
        PlanStep(id="s2", agent="writing", instruction="Write a one-page wombat market brief from s1",
                 depends_on=["s1"])])
    learning = app.memory.get("feedback", first.run.id, Feedback(rating="down", correction=corrected,
                                                                 comment="brief, not notes"), timeout=60)
    assert learning.usable and learning.correction == corrected

    sim.clear()
    second = wait_run(app, ask(app, "research the wombat market in Tasmania for the board"))
    assert second.run.status == "done"
    system = requests_to(sim, "plan")[0][0]["content"]
    shown = system.split("Plans that worked for similar requests before:", 1)[1]
    assert corrected.model_dump_json() in shown and rejected not in shown

    assert app.memory.get("settle", second.run.id, timeout=60)  # its learning is written after it ends
    learnings = app.store.get("learnings", "u1", timeout=30)
    runs = {x.run_id: app.store.get("get_run", x.run_id, timeout=30) for x in learnings}
    rows = examples(learnings, runs)
    planner = [r["messages"][2]["content"] for agent, r in rows if agent == "master"]
    assert corrected.model_dump_json() in planner and rejected not in planner
    assert second.run.plan is not None and second.run.plan.model_dump_json() in planner  # uncorrected, done
    assert {agent for agent, _ in rows} >= {"master", "research"}


def test_the_ollama_embedder_goes_through_the_gateway(make_app: Callable[..., runtime.App], sim: SimHandle) -> None:
    app = make_app(embedder="ollama", embedding_model="sim-embed")
    doc = upload(app, "u1", "onboarding.md", ONBOARDING).document
    hits = search(app, "u1", "welcome pack service agreement invoice schedule")
    assert hits and hits[0].source_id == doc.id
    stats = app.memory.get("stats", "u1", timeout=30)
    assert stats.embedder == "ollama/sim-embed" and stats.collections["documents"] == doc.chunks
    assert sum(r["inputs"] for r in sim.log() if r["kind"] == "embed") >= doc.chunks + 1
