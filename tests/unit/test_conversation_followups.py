"""Issue 21's loose ends, without Ray: a cancel and its withdrawn proposals are audited (who or which
budget, why, how many); a follow-up resolves against the last run with steps however many direct
answers came after it, and the context names that run; the fine-tune export asks with the very
messages the master plans with (the conversation as it was, the decision's prompt)."""

from __future__ import annotations

import json
from typing import Any

from actors import agents
from actors.agents.planning import decide_prompt, plan_messages
from actors.agents.subagent import subagent_messages
from actors.master import MasterAgent
from actors.runtime.handles import LocalHandle
from core.action_schemas import AuditEntry
from core.audit import cancel_entries
from core.chat_schemas import ChatMessage, ChatRequest, ChatResponse
from core.memory_schemas import LearningView
from core.schemas import (
    ConversationSummary,
    ConversationView,
    Message,
    Plan,
    PlanStep,
    Run,
    RunCancel,
    RunView,
    TaskRecord,
)
from core.settings import Settings
from memory.conversation_context import ConversationContext, context_at, earlier_run_with_steps
from memory.finetune import alternating, examples, training_contexts


def _run(run_id: str, message: str, at: float, steps: int = 0, summary: str = "") -> RunView:
    plan = Plan(goal="Draft notes for the venues", steps=[
        PlanStep(id=f"s{i}", agent="writing", instruction=f"Write the note for venue {i}")
        for i in range(1, steps + 1)]) if steps else None
    tasks = [TaskRecord(id=f"{run_id}:s{i}", run_id=run_id, step_id=f"s{i}", agent="writing",
                        instruction=f"Write the note for venue {i}", status="done", result=f"NOTE-{i} for venue {i}",
                        idempotency_key=f"{run_id}{i}", created_at=at, updated_at=at) for i in range(1, steps + 1)]
    run = Run(id=run_id, conversation_id="c1", user_id="u1", message=message, status="done", plan=plan,
              summary=summary or None, created_at=at, updated_at=at + 0.5, finished_at=at + 0.5)
    return RunView(run=run, tasks=tasks)


# A run with three steps, then three requests answered directly (no steps).
VIEWS = {v.run.id: v for v in (
    _run("r1", "write a note for each venue", 0.0, steps=3, summary="Three notes written."),
    _run("r2", "hello", 2.0, summary="Hello!"),
    _run("r3", "thanks", 4.0, summary="You're welcome."),
    _run("r4", "what can you do?", 6.0, summary="I plan work for sub-agents."))}
TURNS = [m for v in VIEWS.values() for m in (
    Message(id=f"{v.run.id}u", role="user", content=v.run.message, run_id=v.run.id, created_at=v.run.created_at),
    Message(id=f"{v.run.id}a", role="assistant", content=v.run.summary or "", run_id=v.run.id,
            created_at=v.run.created_at + 0.5))]
FOLLOW_UP = "make the second one shorter"
STEP = {"id": "s1", "agent": "writing", "instruction": "Shorten NOTE-2", "depends_on": []}


class _Gateway:
    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.requests: list[ChatRequest] = []

    async def chat(self, req: ChatRequest) -> ChatResponse:
        self.requests.append(req)
        return ChatResponse(message=ChatMessage(role="assistant", content=self.reply), model="fake")


class _Store:
    """What the master asks of the Store while it answers a message or cancels a run."""

    def __init__(self) -> None:
        self.audit: list[AuditEntry] = []
        self.plans: list[Plan] = []

    async def create_run(self, message: str, user_id: str, conversation_id: str | None = None,
                         budget: object = None) -> Run:
        return Run(id="r9", conversation_id="c1", user_id=user_id, message=message, status="planning",
                   created_at=8.0, updated_at=8.0)

    async def recent_turns(self, conversation_id: str, exclude_run_id: str | None, limit: int) -> list[Message]:
        return [t for t in TURNS if t.run_id != exclude_run_id][-limit:]

    async def get_run(self, run_id: str) -> RunView | None:
        return VIEWS.get(run_id)

    async def enqueue_plan(self, run_id: str, plan: Plan, max_attempts: int) -> None:
        self.plans.append(plan)

    async def note_run_error(self, run_id: str, error: str) -> None:
        pass

    async def cancel_run(self, run_id: str, user_id: str | None, reason: str) -> RunCancel:
        return RunCancel(run_id=run_id, status="cancelled", cancelled=not self.audit, stopped_steps=[f"{run_id}:s1"],
                         withdrawn=["act_1", "act_2"])

    async def record_audit(self, entry: AuditEntry) -> None:
        self.audit.append(entry)


def _master(store: _Store, gateway: _Gateway, **settings: Any) -> MasterAgent:
    return MasterAgent(Settings(stream_replies=False, **settings), LocalHandle(store, "store"),
                       LocalHandle(gateway, "gateway"))


async def _live_request(message: str) -> tuple[list[ChatMessage], _Store]:
    """The master's messages for ``message`` after the conversation above, as its gateway received them."""
    store, gateway = _Store(), _Gateway(json.dumps({"mode": "plan", "reply": "", "goal": "g", "steps": [STEP]}))
    master = _master(store, gateway)
    await master.submit(message, "u1", "c1")
    for task in list(master._planning.values()):
        await task
    return gateway.requests[0].messages, store


# --- audit --------------------------------------------------------------------------------------


def test_a_cancel_is_audited_with_who_why_and_each_withdrawn_proposal() -> None:
    out = RunCancel(run_id="r1", status="cancelled", cancelled=True, stopped_steps=["r1:s1"], withdrawn=["a1", "a2"])
    run, *withdrawn = cancel_entries(out, "u1", "alice", "cancelled by alice", 5.0)
    assert (run.action, run.actor, run.user_id, run.run_id) == ("run.cancelled", "alice", "u1", "r1")
    assert run.detail == {"by": "person", "reason": "cancelled by alice", "stopped_steps": 1, "withdrawn": 2}
    assert [(e.action, e.subject_id, e.actor, e.detail["by"]) for e in withdrawn] == [
        ("approval.withdrawn", "a1", "alice", "person"), ("approval.withdrawn", "a2", "alice", "person")]
    (budget,) = cancel_entries(out.model_copy(update={"withdrawn": []}), "u1", None, "token budget of 5 reached", 5.0)
    assert budget.actor == "system" and budget.detail["by"] == "budget" and budget.detail["withdrawn"] == 0
    assert cancel_entries(out.model_copy(update={"cancelled": False}), "u1", "alice", "again", 6.0) == []


async def test_the_master_audits_a_budget_stop_for_the_runs_owner_and_only_once() -> None:
    store = _Store()
    master = _master(store, _Gateway(""))
    await master.cancel(run_id="r1", user_id=None, reason="token budget of 5 reached (the run used 9)")
    await master.cancel(run_id="r1", user_id=None, reason="token budget of 5 reached (the run used 9)")
    assert [(e.action, e.user_id, e.actor) for e in store.audit] == [
        ("run.cancelled", "u1", "system"), ("approval.withdrawn", "u1", "system"),
        ("approval.withdrawn", "u1", "system")]
    assert store.audit[0].detail["reason"].startswith("token budget of 5") and store.audit[0].detail["by"] == "budget"


# --- follow-ups ---------------------------------------------------------------------------------


async def test_the_second_one_resolves_against_the_last_run_with_steps_after_three_direct_answers() -> None:
    messages, store = await _live_request(FOLLOW_UP)
    data = messages[-1].content
    assert data.startswith("Data from the last run in this conversation")
    assert ("Run: r1 (the newest run with steps in this conversation; 3 later requests answered without steps)"
            in data)
    assert "2. s2 (writing, done): Write the note for venue 2 → NOTE-2 for venue 2" in data
    assert messages[-2].content == FOLLOW_UP and [p.steps[0].instruction for p in store.plans] == ["Shorten NOTE-2"]


def test_a_past_runs_context_is_the_conversation_before_it() -> None:
    conversation = _conversation()
    assert earlier_run_with_steps(conversation, "r9") == ("r1", 3)
    assert earlier_run_with_steps(conversation, "r1") is None
    ctx = context_at(conversation, "r9", VIEWS, 1500)
    assert [m.content for m in ctx.history] == [m.content for m in TURNS] and ctx.last_run_id == "r1"
    assert context_at(conversation, "r1", VIEWS, 1500) == ConversationContext()
    assert context_at(conversation, "r9", VIEWS, 0) == ConversationContext()


# --- the fine-tune export -----------------------------------------------------------------------


async def test_the_finetune_export_asks_as_the_master_does_now_and_answers_with_its_decision() -> None:
    live, _ = await _live_request(FOLLOW_UP)
    plan = Plan(goal="g", steps=[PlanStep.model_validate(STEP)])
    learning = LearningView(run_id="r9", request=FOLLOW_UP, plan=plan, outcome="done", usable=True,
                            created_at=9.0, updated_at=9.0)
    ended = RunView(run=Run(id="r9", conversation_id="c1", user_id="u1", message=FOLLOW_UP, status="done", plan=plan,
                            created_at=8.0, updated_at=9.0), tasks=[])
    conversation = _conversation()
    contexts = training_contexts([learning], {"r9": ended}, {"c1": conversation}.get, VIEWS.get, 1500)

    def asked(request: str, context: ConversationContext) -> list[ChatMessage]:
        return plan_messages(agents.all_specs(), request, context=context, decide=True)

    (row,) = [r for a, r in examples([learning], {"r9": ended}, master_messages=asked, step_messages=subagent_messages,
                                      contexts=contexts) if a == "master"]
    *prompt, answer = row["messages"]
    assert prompt[0] == {"role": "system", "content": decide_prompt(agents.all_specs())}
    assert prompt == alternating(live)  # what the master was asked (the request and its data block as one turn)
    assert [m["role"] for m in prompt] == ["system", *["user", "assistant"] * 4, "user"]
    assert json.loads(answer["content"]) == {"mode": "plan", "reply": "", "goal": "g", "steps": [STEP]}

    bare = examples([learning], {}, master_messages=lambda r, c: plan_messages(agents.all_specs(), r, context=c),
                    step_messages=subagent_messages, decide=False)
    assert [m["role"] for m in bare[0][1]["messages"]] == ["system", "user", "assistant"]  # no conversation given
    assert json.loads(bare[0][1]["messages"][-1]["content"]) == json.loads(plan.model_dump_json())


def _conversation() -> ConversationView:
    asked = Run(id="r9", conversation_id="c1", user_id="u1", message=FOLLOW_UP, status="done", created_at=8.0,
                updated_at=9.0)
    later = Message(id="r9u", role="user", content=FOLLOW_UP, run_id="r9", created_at=8.0)
    return ConversationView(
        conversation=ConversationSummary(id="c1", title="venues", created_at=0.0, updated_at=9.0, runs=5),
        messages=[*TURNS, later], runs=[*(v.run for v in VIEWS.values()), asked])


