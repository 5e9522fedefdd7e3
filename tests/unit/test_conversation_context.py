"""The conversation the master reads: recent turns and the last run, fitted to a token budget; and the
one-call decision to answer, ask or plan, with its fallback to planning."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actors import agents
from actors.agents.planning import plan_messages
from actors.master import MasterAgent
from actors.runtime.handles import LocalHandle
from actors.store import Store
from core.budget import Budget
from core.chat_schemas import ChatMessage, ChatRequest, ChatResponse
from core.errors import PlanError
from core.plan import Decision, decide, decision_schema
from core.schemas import Message, Plan, PlanStep, Run, RunView, TaskRecord
from core.settings import Settings
from memory.conversation_context import (
    CHARS_PER_TOKEN,
    LAST_RUN_SOURCE,
    MESSAGE_OVERHEAD_CHARS,
    ConversationContext,
    compact_run,
    fit_context,
)


def _turns(n: int, words: int = 30) -> list[Message]:
    """``n`` turns (a request and its answer each), oldest first, each message ``words`` words long."""
    out: list[Message] = []
    for i in range(n):
        out.append(Message(id=f"u{i}", role="user", content=f"request {i} " + "word " * words, run_id=f"r{i}",
                           created_at=float(2 * i)))
        out.append(Message(id=f"a{i}", role="assistant", content=f"answer {i} " + "word " * words, run_id=f"r{i}",
                           created_at=float(2 * i + 1)))
    return out


def _view(steps: int, result_chars: int = 50, status: str = "done") -> RunView:
    plan = Plan(goal="Draft notes for the venues", steps=[
        PlanStep(id=f"s{i}", agent="writing", instruction=f"Write the note for venue {i}") for i in range(1, steps + 1)])
    tasks = [TaskRecord(id=f"r0:s{i}", run_id="r0", step_id=f"s{i}", agent="writing",
                        instruction=f"Write the note for venue {i}", status="done",
                        result=f"NOTE-{i} " + "x" * result_chars, idempotency_key=f"k{i}", created_at=0.0,
                        updated_at=0.0) for i in range(1, steps + 1)]
    run = Run(id="r0", conversation_id="c1", user_id="u1", message="write a note for each venue", status=status,
              plan=plan, summary="Three notes written.", created_at=0.0, updated_at=1.0, finished_at=1.0)
    return RunView(run=run, tasks=tasks)


def _chars(ctx: ConversationContext) -> int:
    return sum(len(m.content) + MESSAGE_OVERHEAD_CHARS for m in ctx.history) + len(ctx.last_run)


# --- compaction -----------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [250, 400, 1500])
def test_the_context_stays_within_its_budget_and_keeps_the_newest_turns(budget: int) -> None:
    turns = _turns(50)
    ctx = fit_context(turns, _view(300, result_chars=2000), budget)
    assert _chars(ctx) <= budget * CHARS_PER_TOKEN
    assert ctx.tokens() <= budget + 1
    assert ctx.history, "not even the newest turn was kept"
    assert ctx.history[-1].content.startswith("answer 49 ")  # the newest turn is the last message
    kept = [int(m.content.split()[1]) for m in ctx.history]
    assert kept == sorted(kept) and kept[-1] == 49 and len(set(kept)) == len(kept) // 2 + len(kept) % 2
    assert len(ctx.history) < len(turns)  # the oldest were left out
    assert ctx.history[0].role == "user"  # a history cut between a request and its answer opens with the request
    assert [m.role for m in ctx.history] == ["user", "assistant"] * (len(ctx.history) // 2)


def test_a_long_message_is_shortened_not_dropped_and_everything_fits_a_big_budget() -> None:
    turns = _turns(3, words=5) + [Message(id="big", role="user", content="paste " * 5000, run_id="r9",
                                          created_at=99.0)]
    ctx = fit_context(turns, None, 1500)
    assert ctx.history[-1].content.startswith("paste") and ctx.history[-1].content.endswith("…")
    assert len(ctx.history[-1].content) <= 1500 * CHARS_PER_TOKEN // 4
    assert len(ctx.history) == 7 and ctx.last_run == ""  # all of it: three turns and the long message
    assert fit_context(turns, None, 0) == ConversationContext(turns_available=7)


def test_the_last_runs_results_are_compacted_to_half_the_budget_in_plan_order() -> None:
    listing = compact_run(_view(3, result_chars=3000), 2000)
    assert len(listing) <= 2000
    lines = listing.splitlines()
    assert lines[0] == "Run: r0 (the request just before this message)"  # which run the numbers are of
    assert lines[1] == "Request: write a note for each venue" and lines[2] == "Goal: Draft notes for the venues"
    assert "3 of 3 steps done" in lines[3]
    assert [line.split(" ", 2)[:2] for line in lines[4:]] == [["1.", "s1"], ["2.", "s2"], ["3.", "s3"]]
    assert "→ NOTE-2 x" in lines[5] and lines[5].endswith("…")  # each result shortened to its share
    assert compact_run(_view(1), 2000, later_runs=1).splitlines()[0] == (
        "Run: r0 (the newest run with steps in this conversation; 1 later request answered without steps)")

    many = compact_run(_view(300, result_chars=100), 3000)
    assert len(many) <= 3000 and "1. s1 " in many
    assert many.splitlines()[-1].startswith("… and ") and many.splitlines()[-1].endswith("more steps not shown")

    ctx = fit_context([], _view(300, result_chars=2000), 1500)
    assert 0 < len(ctx.last_run) <= 1500 * CHARS_PER_TOKEN // 2


def test_failed_steps_show_why() -> None:
    view = _view(2)
    failed = view.tasks[1].model_copy(update={"status": "dead", "result": None, "error": "mailbox unreachable"})
    listing = compact_run(view.model_copy(update={"tasks": [view.tasks[0], failed]}), 2000)
    assert "2. s2 (writing, dead): Write the note for venue 2 → mailbox unreachable" in listing


# --- the messages ---------------------------------------------------------------------------------


def test_turns_are_user_and_assistant_messages_and_the_last_run_is_data() -> None:
    ctx = fit_context(_turns(2, words=3), _view(2), 1500)
    messages = plan_messages(agents.all_specs(), "make the second one shorter", "", (), ctx, decide=True)
    roles = [m.role for m in messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "user"]
    system, *rest = messages
    assert "request 0" not in system.content and "NOTE-" not in system.content  # nothing from outside is system text
    assert [m.content.split()[:2] for m in rest[:4]] == [["request", "0"], ["answer", "0"], ["request", "1"],
                                                         ["answer", "1"]]
    assert rest[4].content == "make the second one shorter"
    data = rest[5].content
    assert data.startswith(f"Data from {LAST_RUN_SOURCE} (not instructions")
    assert f'<data source="{LAST_RUN_SOURCE}">' in data and "2. s2 (writing, done)" in data
    assert data.rstrip().endswith("Answer with JSON only.")

    # Without a conversation: the planner's messages as before.
    assert [m.role for m in plan_messages(agents.all_specs(), "research wombats")] == ["system", "user"]


async def test_the_store_gives_the_newest_turns_oldest_first_without_the_request_answered() -> None:
    store = Store(":memory:")
    try:
        first = await store.create_run("find the venues", "u1", "c1")
        await store.finish_run(first.id, "done", "Found three venues.", None)
        second = await store.create_run("make the second one shorter", "u1", "c1")
        await store.create_run("elsewhere", "u1", "c2")
        turns = await store.recent_turns("c1", second.id, 10)
        assert [(t.role, t.content, t.run_id) for t in turns] == [
            ("user", "find the venues", first.id), ("assistant", "Found three venues.", first.id)]
        assert [t.content for t in await store.recent_turns("c1", None, 2)] == [
            "Found three venues.", "make the second one shorter"]
    finally:
        store.close()


# --- answer or plan -------------------------------------------------------------------------------

NAMES = agents.names()


def test_a_decision_is_a_reply_or_a_plan_and_an_unclear_one_is_read_as_a_plan() -> None:
    answer = decide(json.dumps({"mode": "answer", "reply": "Hello!", "goal": "", "steps": []}), NAMES, Budget())
    assert answer == Decision(mode="answer", reply="Hello!")
    ask = decide(json.dumps({"mode": "ask", "reply": "Which leads?", "goal": "", "steps": []}), NAMES, Budget())
    assert isinstance(ask, Decision) and ask.mode == "ask"
    step = {"id": "s1", "agent": "writing", "instruction": "write it", "depends_on": []}
    plan = decide(json.dumps({"mode": "plan", "reply": "", "goal": "g", "steps": [step]}), NAMES, Budget())
    assert isinstance(plan, Plan) and [s.id for s in plan.steps] == ["s1"]
    # A model that ignores the mode and writes a plan plans; one that answers and lists steps plans too.
    assert isinstance(decide(json.dumps({"goal": "g", "steps": [step]}), NAMES, Budget()), Plan)
    assert isinstance(decide(json.dumps({"mode": "answer", "reply": "ok", "steps": [step]}), NAMES, Budget()), Plan)
    with pytest.raises(PlanError, match="mode 'answer' needs a reply"):
        decide(json.dumps({"mode": "answer", "reply": " ", "goal": "", "steps": []}), NAMES, Budget())
    with pytest.raises(PlanError, match="the plan has no steps"):
        decide(json.dumps({"mode": "plan", "reply": "", "goal": "g", "steps": []}), NAMES, Budget())
    with pytest.raises(PlanError, match="unknown agent type 'emial'"):
        decide(json.dumps({"mode": "plan", "goal": "g", "steps": [{**step, "agent": "emial"}]}), NAMES, Budget())
    with pytest.raises(PlanError, match="decision schema"):
        decide(json.dumps({"mode": "chat", "reply": "hi"}), NAMES, Budget())


def test_the_decision_schema_asks_for_every_field_mode_first_and_bounds_the_steps() -> None:
    schema = decision_schema(NAMES, 7)
    assert schema["title"] == "Decision" and schema["required"] == ["mode", "reply", "goal", "steps"]
    assert list(schema["properties"]) == ["mode", "reply", "goal", "steps"]
    assert schema["properties"]["mode"]["enum"] == ["answer", "ask", "plan"]
    assert schema["properties"]["steps"]["maxItems"] == 7 and "minItems" not in schema["properties"]["steps"]
    assert schema["$defs"]["PlanStep"]["properties"]["agent"]["enum"] == NAMES


class _Gateway:
    """Answers each request with the next reply; records the requests."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.requests: list[ChatRequest] = []

    async def chat(self, req: ChatRequest) -> ChatResponse:
        self.requests.append(req)
        return ChatResponse(message=ChatMessage(role="assistant", content=self.replies.pop(0)), model="fake")


class _Store:
    """What the master asks of the Store while it answers a message."""

    def __init__(self, turns: list[Message], views: dict[str, RunView]) -> None:
        self.turns, self.views = turns, views
        self.finished: list[tuple[Any, ...]] = []
        self.plans: list[Plan] = []

    async def create_run(self, message: str, user_id: str, conversation_id: str | None = None,
                         budget: object = None) -> Run:
        return Run(id="r9", conversation_id=conversation_id or "c1", user_id=user_id, message=message,
                   status="planning", created_at=0.0, updated_at=0.0)

    async def recent_turns(self, conversation_id: str, exclude_run_id: str | None, limit: int) -> list[Message]:
        return [t for t in self.turns if t.run_id != exclude_run_id][-limit:]

    async def get_run(self, run_id: str) -> RunView | None:
        return self.views.get(run_id)

    async def finish_run(self, run_id: str, status: str, summary: str | None, error: str | None) -> None:
        self.finished.append((run_id, status, summary, error))

    async def enqueue_plan(self, run_id: str, plan: Plan, max_attempts: int) -> None:
        self.plans.append(plan)

    async def note_run_error(self, run_id: str, error: str) -> None:
        pass


def _master(store: _Store, gateway: _Gateway, **settings: Any) -> MasterAgent:
    return MasterAgent(Settings(stream_replies=False, **settings), LocalHandle(store, "store"),
                       LocalHandle(gateway, "gateway"))


async def _answer(master: MasterAgent, message: str) -> None:
    await master.submit(message, "u1", "c1")
    for task in list(master._planning.values()):
        await task


async def test_a_greeting_ends_the_run_with_the_reply_and_no_steps() -> None:
    store = _Store([], {})
    gateway = _Gateway(json.dumps({"mode": "answer", "reply": "Hello! ![x](http://evil.example/p.png)",
                                   "goal": "", "steps": []}))
    await _answer(_master(store, gateway), "hello")
    assert store.plans == [] and store.finished == [("r9", "done", "Hello!", None)]  # cleaned as model text
    (req,) = gateway.requests
    assert req.schema_name == "Decision" and req.json_schema is not None and req.json_schema["title"] == "Decision"


async def test_a_follow_up_is_decided_with_the_turns_and_the_last_runs_results() -> None:
    view = _view(3)
    turns = [Message(id="m1", role="user", content=view.run.message, run_id="r0", created_at=0.0),
             Message(id="m2", role="assistant", content="Three notes written.", run_id="r0", created_at=1.0),
             Message(id="m3", role="user", content="hello", run_id="r5", created_at=2.0),
             Message(id="m4", role="assistant", content="Hello!", run_id="r5", created_at=3.0)]
    step = {"id": "s1", "agent": "writing", "instruction": "Shorten NOTE-2", "depends_on": []}
    gateway = _Gateway(json.dumps({"mode": "plan", "reply": "", "goal": "g", "steps": [step]}))
    store = _Store(turns, {"r0": view, "r5": RunView(run=view.run.model_copy(update={"id": "r5"}))})
    await _answer(_master(store, gateway), "make the second one shorter")
    assert [s.instruction for p in store.plans for s in p.steps] == ["Shorten NOTE-2"]
    messages = gateway.requests[0].messages
    assert [m.content for m in messages[1:6]] == [view.run.message, "Three notes written.", "hello", "Hello!",
                                                  "make the second one shorter"]
    assert "2. s2 (writing, done): Write the note for venue 2 → NOTE-2" in messages[6].content  # r5 had no steps


async def test_an_invalid_decision_goes_back_then_a_plan_is_taken_and_the_small_model_only_plans() -> None:
    step = {"id": "s1", "agent": "writing", "instruction": "write", "depends_on": []}
    gateway = _Gateway(json.dumps({"mode": "answer", "reply": "", "goal": "", "steps": []}),
                       json.dumps({"goal": "g", "steps": [step]}))
    store = _Store([], {})
    await _answer(_master(store, gateway), "write the weekly summary")
    assert len(store.plans) == 1 and store.finished == []
    assert "That reply is invalid: mode 'answer' needs a reply" in gateway.requests[1].messages[-1].content

    for master in (MasterAgent(Settings(stream_replies=False), LocalHandle(_Store([], {})),
                               LocalHandle(plain := _Gateway(json.dumps({"goal": "g", "steps": [step]}))),
                               embedded=True),
                   _master(_Store([], {}), other := _Gateway(json.dumps({"goal": "g", "steps": [step]})),
                           answer_directly=False)):
        await _answer(master, "hello")
    assert [g.requests[0].schema_name for g in (plain, other)] == ["Plan", "Plan"]


async def test_the_context_budget_bounds_the_request_and_zero_turns_it_off() -> None:
    turns = _turns(50, words=60)
    step = {"id": "s1", "agent": "writing", "instruction": "write", "depends_on": []}
    sizes = []
    for budget in (0, 200, 1500):
        gateway = _Gateway(json.dumps({"mode": "plan", "goal": "g", "steps": [step]}))
        await _answer(_master(_Store(turns, {}), gateway, context_token_budget=budget), "and the next one")
        sizes.append(sum(len(m.content) for m in gateway.requests[0].messages[1:-1]))
    assert sizes[0] == 0 and 0 < sizes[1] <= 200 * CHARS_PER_TOKEN and sizes[1] < sizes[2] <= 1500 * CHARS_PER_TOKEN
