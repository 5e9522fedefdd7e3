"""Long-term memory in the running app: SOPs reach the plan and its sources, dedup, delete,
per-user isolation, rebuild from DuckDB, feedback becoming the next example, bad files.

The tests share one app (``module_app``), each with users of its own; the ones that restart actors
or need another embedder are in test_memory_restarts."""

from __future__ import annotations

import time
from typing import Any

import pytest

from actors.agents import all_specs
from actors.agents.planning import plan_messages
from actors.agents.subagent import subagent_messages
from actors.runtime import wiring
from actors.runtime.typed import blocking
from core.errors import ConfigError, IngestError
from core.memory_schemas import DocumentView, Feedback, UploadResult
from core.schemas import Plan, PlanStep
from maos_testing.llm.sim_thread import SimHandle
from memory.finetune import examples
from tests._db import app_sql
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


def upload(app: wiring.App, user: str, name: str, data: bytes, kind: str = "doc") -> UploadResult:
    result: UploadResult = blocking(app.memory.ingest(user_id=user, filename=name, data=data, kind=kind, tags=["test"]), timeout=120)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        view: DocumentView = blocking(app.store.get_document(user_id=user, doc_id=result.document.id), timeout=30)
        if view.document.status != "indexing":
            assert view.document.status == "ready", view.document
            assert view.document.chunks_done == view.document.chunks > 0
            return result
        time.sleep(0.05)
    raise AssertionError("the upload was not indexed in time")


def search(app: wiring.App, user: str, query: str, limit: int = 5) -> list[Any]:
    return blocking(app.memory.search(user_id=user, query=query, collections=None, limit=limit), timeout=60)


def requests_to(sim: SimHandle, kind: str) -> list[list[dict[str, Any]]]:
    """The messages of every logged request of a kind (plan, tool_call, final, chat)."""
    return [r["body"]["messages"] for r in sim.log() if r["kind"] == kind and r["body"] is not None]


def entries(app: wiring.App, source_id: str) -> int:
    return int(app_sql(app, "SELECT count(*) FROM memory_entries WHERE source_id = ?", [source_id])[0][0])


def test_a_fact_only_in_an_sop_reaches_the_plan_the_step_and_the_sources(
        module_app: wiring.App, sim: SimHandle) -> None:
    app = module_app
    sim.update(log_bodies=True)
    sop = upload(app, "u1", "refunds.md", REFUND_SOP, "sop").document
    upload(app, "u1", "onboarding.md", ONBOARDING)

    view = wait_run(app, ask(app, "What is our procedure for a customer refund of 800 dollars?"))
    assert view.run.status == "done", view.run

    plan_system, *plan_users = requests_to(sim, "plan")[0]
    assert plan_system["role"] == "system" and "Priya Raman" not in plan_system["content"]  # memory is data
    assert any("Priya Raman" in m["content"] for m in plan_users)  # only the SOP says who approves large refunds
    steps = requests_to(sim, "tool_call")
    assert not any("Priya Raman" in m[0]["content"] for m in steps)
    assert any("Priya Raman" in u["content"] for m in steps for u in m[1:] if u["role"] == "user"), \
        "the sops step was not given the SOP"

    by_source = {(s.collection, s.source_id): s for s in view.sources}
    refund = by_source[("sops", sop.id)]
    assert refund.link == f"/api/documents/{sop.id}" and refund.title == "Refund procedure"
    assert view.sources == sorted(view.sources, key=lambda s: -s.score)
    events = blocking(app.store.run_events(run_id=view.run.id, after=0, wait_s=0.0, limit=1000), timeout=30)
    assert any(e.kind == "memory" and e.sources for e in events)

    # A pool asks for a whole batch of steps at once: each step gets the memories for its own instruction.
    steps = [("Who approves a refund of 800 dollars?", "r-batch", "r-batch:s1"), ("  ", "r-batch", "r-batch:s2"),
             ("What does the welcome pack for a new client contain?", "r-batch", "r-batch:s3")]
    refund_text, blank, welcome = blocking(app.memory.step_contexts(user_id="u1", agent="sops", steps=steps), timeout=60)
    assert "Priya Raman" in refund_text and blank == "" and "service agreement" in welcome
    assert blocking(app.memory.step_contexts(user_id="nobody", agent="sops", steps=steps), timeout=60) == ["", "", ""]  # not u1's

    # A pool's tools' searches of a moment come in one call: each gets its own answer, or its own error.
    found, bad = blocking(app.memory.search_many([("u1", "who approves a large refund?", ["sops"], 3),
                                                ("u1", "refunds", ["no_such_collection"], 3)]), timeout=60)
    assert found and found[0].source_id == sop.id
    assert isinstance(bad, ConfigError) and "no_such_collection" in str(bad)


def test_dedup_isolation_delete_and_rebuild(module_app: wiring.App) -> None:
    app = module_app
    first = upload(app, "d1", "refunds.md", REFUND_SOP, "sop")
    again: UploadResult = blocking(app.memory.ingest(user_id="d1", filename="refunds-copy.md", data=REFUND_SOP, kind="sop", tags=[]), timeout=60)
    assert again.duplicate and again.document.id == first.document.id
    assert entries(app, first.document.id) == first.document.chunks  # nothing added twice
    theirs = upload(app, "d2", "refunds.md", REFUND_SOP, "sop")  # the same file is new for another user
    assert not theirs.duplicate and theirs.document.id != first.document.id
    onboarding = upload(app, "d2", "onboarding.md", ONBOARDING)

    mine = search(app, "d1", "who approves a large refund?")
    assert mine and {s.source_id for s in mine} == {first.document.id}
    assert not any(s.source_id == onboarding.document.id for s in search(app, "d1", "kickoff call welcome pack"))
    assert {s.source_id for s in search(app, "d2", "who approves a large refund?")} <= {
        theirs.document.id, onboarding.document.id}

    queries = ["who approves a large refund?", "support hours", "welcome pack for clients"]
    before = {(u, q): [(s.source_id, s.heading, round(s.score, 3)) for s in search(app, u, q)]
              for u in ("d1", "d2") for q in queries}
    stored = dict(app_sql(app, "SELECT collection, count(*) FROM memory_entries GROUP BY collection"))
    assert stored["sops"] >= first.document.chunks + theirs.document.chunks
    counts = blocking(app.memory.rebuild(), timeout=300)
    assert counts["sops"] == stored["sops"] and counts["documents"] == stored["documents"]  # all, from DuckDB
    after = {(u, q): [(s.source_id, s.heading, round(s.score, 3)) for s in search(app, u, q)]
             for u in ("d1", "d2") for q in queries}
    assert after == before

    blocking(app.memory.delete_document(user_id="d1", doc_id=first.document.id), timeout=60)
    assert search(app, "d1", "who approves a large refund?") == []
    assert entries(app, first.document.id) == 0
    assert blocking(app.store.get_document(user_id="d1", doc_id=first.document.id), timeout=30) is None
    assert search(app, "d2", "who approves a large refund?")  # the other user's copy stays


def test_a_bad_file_gets_a_clear_error_and_nothing_is_stored(module_app: wiring.App) -> None:
    app = module_app
    stored = lambda: app_sql(app, "SELECT (SELECT count(*) FROM documents WHERE user_id = 'b1'), "  # noqa: E731
                                  "(SELECT count(*) FROM memory_entries WHERE user_id = 'b1')")[0]
    for name, data, why in [("empty.txt", b"", "empty"),
                            ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "pdf"),
                            ("notes.exe", b"MZ\x90\x00", "supported"),
                            ("blank.md", b"   \n\n  \n", "empty")]:
        with pytest.raises(IngestError) as err:
            blocking(app.memory.ingest(user_id="b1", filename=name, data=data, kind="doc", tags=[]), timeout=60)
        assert name in str(err.value) and why in str(err.value).lower()
        assert stored() == (0, 0)


def test_a_correction_is_the_next_example_and_the_export_has_it_not_the_rejected_plan(
        module_app: wiring.App, sim: SimHandle) -> None:
    app = module_app
    sim.update(log_bodies=True)
    first = wait_run(app, ask(app, "research the wombat market in Tasmania", user="w1"))
    assert first.run.status == "done" and first.run.plan is not None
    rejected = first.run.plan.model_dump_json()
    corrected = Plan(goal="A brief on the Tasmanian wombat market", steps=[
        PlanStep(id="s1", agent="research", instruction="Collect stored notes on wombat breeders in Tasmania"),
        PlanStep(id="s2", agent="writing", instruction="Write a one-page wombat market brief from s1",
                 depends_on=["s1"])])
    learning = blocking(app.memory.feedback(run_id=first.run.id, feedback=Feedback(rating="down", correction=corrected,
                                                                 comment="brief, not notes")), timeout=60)
    assert learning.usable and learning.correction == corrected

    sim.clear()
    second = wait_run(app, ask(app, "research the wombat market in Tasmania for the board", user="w1"))
    assert second.run.status == "done"
    asked = requests_to(sim, "plan")[0]
    assert "Plans that worked" not in asked[0]["content"] and "plans that worked" not in asked[0]["content"]
    data = next(m["content"] for m in asked if m["role"] == "user" and "Data from plans that worked" in m["content"])
    shown = data.split("Data from plans that worked for similar requests before (examples)", 1)[1]
    assert corrected.model_dump_json() in shown and rejected not in shown

    assert blocking(app.memory.settle(second.run.id), timeout=60)  # its learning is written after it ends
    learnings = blocking(app.store.learnings("w1"), timeout=30)
    runs = {x.run_id: blocking(app.store.get_run(x.run_id), timeout=30) for x in learnings}
    rows = examples(learnings, {k: v for k, v in runs.items() if v is not None}, decide=False,  # the plan alone
                    master_messages=lambda r, c: plan_messages(all_specs(), r, context=c),
                    step_messages=subagent_messages)
    planner = [r["messages"][2]["content"] for agent, r in rows if agent == "master"]
    assert corrected.model_dump_json() in planner and rejected not in planner
    assert second.run.plan is not None and second.run.plan.model_dump_json() in planner  # uncorrected, done
    assert {agent for agent, _ in rows} >= {"master", "research"}
