"""Memory in prompts: quotas, the token budget, the planner's examples, learnings and the export."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from actors.agents import all_specs
from actors.agents.planning import plan_messages, plan_prompt
from actors.agents.subagent import subagent_messages
from actors.store import Store
from core.memory_schemas import Feedback, LearningView, PlanExample
from core.schemas import Plan, PlanStep, Run, RunView, TaskRecord
from core.settings import Settings
from memory.context import RunSources, SourceRecorder, quotas_for, render_memory
from memory.finetune import examples, write_jsonl
from memory.retrieval import Retriever
from memory.vectors import Hit

PLAN = Plan(goal="g", steps=[PlanStep(id="s1", agent="research", instruction="look up wombats")])
BETTER = Plan(goal="g", steps=[PlanStep(id="s1", agent="writing", instruction="write the wombat brief")])


def hit(title: str, text: str, score: float, heading: str = "") -> tuple[str, dict[str, str], float]:
    return ("sops", {"title": title, "text": text, "heading": heading}, score)


def test_memory_is_rendered_best_first_within_the_budget() -> None:
    hits = [hit("Refunds", "Refunds above 500 dollars need Priya's approval.", 0.8, "Large refunds"),
            hit("Travel", "word " * 400, 0.5), hit("Never", "not reached", 0.4)]
    text, used = render_memory(hits, token_budget=100)  # type: ignore[arg-type]
    assert text.startswith('[SOP] "Refunds" › Large refunds (relevance 0.80)\nRefunds above 500')
    assert used == 2 and "Never" not in text and text.endswith("…")
    assert len(text) <= 100 * 4
    assert render_memory(hits, token_budget=0) == ("", 0)  # type: ignore[arg-type]


def test_quotas_lean_on_sops_for_the_sops_agent() -> None:
    assert quotas_for("sops")["sops"] > quotas_for("email")["sops"]
    assert "conversations" in quotas_for(None) and "learnings" not in quotas_for(None)


def test_the_planner_gets_memory_and_examples_as_data_after_the_request() -> None:
    ex = PlanExample(run_id="r1", request="brief on wombats", plan=BETTER, corrected=True)
    system, request, data = plan_messages(all_specs(), "a wombat brief", "[SOP] \"Refunds\"\nask Priya", [ex])
    assert system.content == plan_prompt(all_specs()) and "Priya" not in system.content
    assert request.content == "a wombat brief"
    assert "ask Priya" in data.content and "Request: brief on wombats" in data.content
    assert BETTER.model_dump_json() in data.content
    assert data.content.index("Data from memory") < data.content.index("Data from plans that worked")
    plain = plan_messages(all_specs(), "a wombat brief")  # the plain prompt: the small embedded model plans best from it
    assert [m.role for m in plain] == ["system", "user"] and "Sub-agent types:\n- " in plain[0].content


T = TypeVar("T")


class _Vectors:
    """One SOP hit for every search of the sops collection."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def search(self, collection: str, vector: Any, *, user_id: str, limit: int, score_threshold: float | None,
               match: dict[str, Any] | None = None) -> list[Hit]:
        self.searched.append(collection)
        if collection != "sops":
            return []
        return [Hit(id="p1", score=0.9, payload={"source_id": "doc1", "title": "Refunds", "heading": "Large refunds",
                                                  "text": "Refunds above 500 dollars need Priya's approval."})]


class _Engines:
    def __init__(self) -> None:
        self.vectors = _Vectors()
        self.embedded: list[str] = []

    async def embed(self, texts: Sequence[str], interactive: bool) -> np.ndarray:
        self.embedded.extend(texts)
        return np.ones((len(texts), 3), dtype=np.float32)

    async def with_vectors(self, work: Callable[[Any], T]) -> T:
        return work(self.vectors)


class _Reads:
    def __init__(self, has: bool) -> None:
        self.has = has

    async def has_entries(self, user_id: str) -> bool:
        return self.has

    async def learnings(self, user_id: str, run_ids: list[str]) -> list[LearningView]:
        return []

    async def runs_with_actions(self, run_ids: list[str], statuses: Sequence[str]) -> set[str]:
        return set()


async def test_retrieval_runs_on_plain_parts_renders_the_memory_and_records_the_sources() -> None:
    sent: list[RunSources] = []

    async def send(batch: RunSources) -> None:
        sent.append(batch)

    engines = _Engines()
    retriever = Retriever(Settings(rag_min_score=0.0), _Reads(True), engines, SourceRecorder(send))
    found = await retriever.context("u1", "who approves a refund?", run_id="r1", agent="sops")
    assert found.text.startswith('[SOP] "Refunds" › Large refunds (relevance 0.90)\nRefunds above 500 dollars')
    assert [s.source_id for s in found.sources] == ["doc1"] and found.examples == []
    assert engines.embedded == ["who approves a refund?"] and set(engines.vectors.searched) == {"sops", "documents"}
    deadline = time.monotonic() + 5  # the sources go to the Store without holding up the caller
    while not sent and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert [(run_id, task_id, [s.source_id for s in srcs]) for run_id, task_id, srcs in sent[0]] == [("r1", None, ["doc1"])]

    empty = Retriever(Settings(), _Reads(False), _Engines(), SourceRecorder(send))  # no memories: nothing embedded
    assert (await empty.context("u2", "anything")).text == "" and await empty.search("u2", "anything") == []


def _view(run_id: str, status: str = "done") -> tuple[Run, TaskRecord]:
    run = Run(id=run_id, conversation_id="c", user_id="u1", message=f"wombat brief {run_id}", status=status,  # type: ignore[arg-type]
              plan=PLAN, summary="ok", created_at=1, updated_at=2, finished_at=2)
    task = TaskRecord(id=f"{run_id}:s1", run_id=run_id, step_id="s1", agent="research",
                      instruction="look up wombats", depends_on=[], status="done", attempts=1, max_attempts=3,
                      idempotency_key="k", result="wombats found", created_at=1, updated_at=2)
    return run, task


def test_learnings_feedback_and_the_finetune_export(tmp_path: Path) -> None:
    async def go() -> None:
        store = Store(":memory:")
        views = {}
        for rid, status in (("r-good", "done"), ("r-fixed", "done"), ("r-bad", "done"), ("r-failed", "failed")):
            run, task = _view(rid, status)
            views[rid] = RunView(run=run, tasks=[task])
            await store.record_learning(views[rid])
        fixed = await store.set_feedback("r-fixed", Feedback(rating="down", correction=BETTER))
        bad = await store.set_feedback("r-bad", Feedback(rating="down"))
        assert fixed is not None and fixed.usable and fixed.correction == BETTER
        assert bad is not None and not bad.usable
        again = await store.record_learning(views["r-fixed"])  # a run that ends again keeps its feedback
        assert again.correction == BETTER and again.rating == "down"
        learnings = await store.learnings("u1")
        assert {x.run_id: x.usable for x in learnings} == {
            "r-good": True, "r-fixed": True, "r-bad": False, "r-failed": False}

        rows = examples(learnings, views, master_messages=lambda r, c: plan_messages(all_specs(), r, context=c),
                        step_messages=subagent_messages, decide=False)  # the planner's prompt and a bare plan
        planner = {r["messages"][1]["content"]: r["messages"][2]["content"] for a, r in rows if a == "master"}
        assert planner == {"wombat brief r-good": PLAN.model_dump_json(), "wombat brief r-fixed": BETTER.model_dump_json()}
        steps = [r for a, r in rows if a == "research"]
        assert len(steps) == 1 and steps[0]["messages"][2]["content"] == "wombats found"  # the fixed run's steps are not
        out = tmp_path / "ft.jsonl"
        counts = write_jsonl(rows, str(out))
        assert counts == {"master": 2, "research": 1}
        assert [json.loads(line)["messages"][0]["role"] for line in out.read_text().splitlines()] == ["system"] * 3
        assert [r["messages"][0]["content"] for a, r in rows if a == "master"] == [plan_prompt(all_specs())] * 2

    asyncio.run(go())
