"""The dispatcher, and a pool (its tools' queries, the tool cap, what it stores), against a real Store (a DuckDB file)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from actors.dispatcher import Dispatcher
from actors.pool import SubAgentPool
from actors.runtime.apis import StoreApi
from actors.runtime.handles import LocalHandle
from actors.runtime.typed import typed
from actors.store import Store
from core.chat_schemas import ChatMessage, ChatRequest, ChatResponse, ToolCall
from core.schemas import Assignment, Plan, PlanStep, StepOutcome, TaskRecord
from core.settings import Settings
from core.storage_schemas import NewLead, Saved


class _Recorded(LocalHandle):
    """A handle that notes each method asked of it."""

    def __init__(self, obj: Any, name: str = "") -> None:
        super().__init__(obj, name)
        self.asked: list[str] = []

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.asked.append(method)
        return await super().call(method, *args, **kwargs)


class _Pool:
    def __init__(self) -> None:
        self.handed: list[tuple[list[Assignment], dict[str, tuple[str, str]]]] = []

    async def run(self, assignments: list[Assignment], goals: dict[str, tuple[str, str]]) -> int:
        self.handed.append((assignments, goals))
        return len(assignments)

    async def watch(self) -> None:
        await asyncio.Event().wait()

    async def ping(self) -> bool:  # the dispatcher hands nothing to a pool before it answers
        return True


class _Master:
    async def finalize(self, run_id: str) -> None:
        return None


async def _handed_goals(tmp_path: Path, told: bool) -> tuple[dict[str, tuple[str, str]], list[str], str]:
    store = Store(str(tmp_path / "maos.duckdb"))
    store_handle = _Recorded(store, "store")
    pool = _Pool()
    dispatcher = Dispatcher(Settings(data_dir=tmp_path), store_handle, {"writing": [LocalHandle(pool, "writing/0/t")]},
                            LocalHandle(_Master(), "master"), gateway_slots=10)
    await dispatcher.start()
    run = await store.create_run("draft the note", "u1")
    await store.enqueue_plan(run.id, Plan(goal="a note for the team", steps=[
        PlanStep(id="s1", agent="writing", instruction="write it")]), 3)
    await dispatcher.wake({run.id: ("a note for the team", "u1")} if told else None)
    for _ in range(200):
        if pool.handed:
            break
        await asyncio.sleep(0.01)
    store.close()
    ((assignments, goals),) = pool.handed
    assert [a.task.id for a in assignments] == [f"{run.id}:s1"]
    return goals, store_handle.asked, run.id


async def test_a_new_runs_steps_go_out_with_the_goal_the_master_gave_without_asking_the_store(tmp_path: Path) -> None:
    goals, asked, run_id = await _handed_goals(tmp_path, told=True)
    assert goals == {run_id: ("a note for the team", "u1")}
    assert "claim_or_due" in asked and "run_goals" not in asked


async def test_the_goal_of_a_run_it_was_not_told_of_comes_from_the_store(tmp_path: Path) -> None:
    goals, asked, run_id = await _handed_goals(tmp_path, told=False)
    assert goals == {run_id: ("a note for the team", "u1")}
    assert "run_goals" in asked


async def test_a_pools_tool_operations_of_a_moment_reach_the_store_in_one_call_each_with_its_own_answer(
        tmp_path: Path) -> None:
    from actors.pool import _StoreForTools

    store = Store(str(tmp_path / "maos.duckdb"))
    handle = _Recorded(store, "store")
    tools = _StoreForTools(typed(handle, StoreApi))
    ann, bob = tools.for_user("ann"), tools.for_user("bob")  # two steps' tools, two users
    adds = [(ann if i % 2 else bob).add_leads([NewLead(id=f"l{i}", name=f"Lead {i}")], source="csv") for i in range(5)]
    clash = ann.add_leads([NewLead(id="l0", name="Someone else")], source="csv")  # id l0 is taken: fails alone
    bad = bob.find_leads(tag=None, text=None, status=None, limit=-1)  # a read that fails, alone
    drafted = ann.save_draft("r1:s1", "email", "x@example.test", "Hi", "Hello", key="r1:s1:k")
    answers = await asyncio.gather(*adds, clash, bad, drafted, return_exceptions=True)

    assert answers[:5] == [[f"l{i}"] for i in range(5)]
    assert isinstance(answers[5], Exception) and "l0" in str(answers[5])
    assert isinstance(answers[6], Exception) and "LIMIT" in str(answers[6])
    assert isinstance(answers[7], Saved) and answers[7].created
    assert handle.asked == ["tool_ops"]  # the eight operations together
    found = await asyncio.gather(ann.find_leads(tag=None, text=None, status=None, limit=10),
                                 bob.find_leads(tag=None, text=None, status=None, limit=10))
    assert [sorted(x.id for x in leads) for leads in found] == [["l1", "l3"], ["l0", "l2", "l4"]]  # each their own
    assert handle.asked == ["tool_ops"] * 2
    store.close()


class _Gateway:
    """The gateway's ``chat_many`` in-process: a model that asks for ``calls`` tool calls, then answers."""

    def __init__(self, calls: int, answer: str) -> None:
        self.calls = calls
        self.answer = answer
        self.requests: list[ChatRequest] = []

    async def chat_many(self, reqs: list[ChatRequest]) -> AsyncIterator[list[tuple[int, ChatResponse]]]:
        replies = []
        for i, req in enumerate(reqs):
            self.requests.append(req)
            first = not any(m.role == "tool" for m in req.messages)
            msg = (ChatMessage(role="assistant", tool_calls=[
                ToolCall(id=f"c{n}", name="search_documents", arguments={"query": f"q{n}"}) for n in range(self.calls)])
                   if first else ChatMessage(role="assistant", content=self.answer))
            replies.append((i, ChatResponse(message=msg, model="fake")))
        yield replies


class _Reports:
    def __init__(self) -> None:
        self.outcomes: list[StepOutcome] = []

    async def report(self, owner: str, outcomes: list[StepOutcome]) -> None:
        self.outcomes += outcomes


async def test_a_pool_runs_its_steps_under_the_settings_tool_cap_and_stores_clean_results(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "maos.duckdb"))
    gateway = _Gateway(calls=4, answer="Found it: ![](https://exfil.example/p.png?d=1) [doc](https://docs.example/d)")
    reports = _Reports()
    settings = Settings(data_dir=tmp_path, max_tool_calls_per_turn=3, link_hosts="docs.example")
    pool = SubAgentPool("research", "research/0", settings, LocalHandle(gateway), LocalHandle(store),
                        LocalHandle(reports))
    run = await store.create_run("look it up", "u1")
    task = TaskRecord(id=f"{run.id}:s1", run_id=run.id, step_id="s1", agent="research", instruction="look it up",
                      depends_on=[], status="running", attempts=1, max_attempts=3, idempotency_key=f"{run.id}:s1",
                      created_at=1, updated_at=1)
    await pool.run([Assignment(task=task, attempt=1, lease_owner="research/0", context="s0 said: hello")],
                   {run.id: ("find the doc", "u1")})
    deadline = asyncio.get_running_loop().time() + 10
    while not reports.outcomes and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    (outcome,) = reports.outcomes
    assert outcome.ok and outcome.result == "Found it:  [doc](https://docs.example/d)"
    observations = [m.content for m in gateway.requests[-1].messages if m.role == "tool"]
    assert len(observations) == 4 and not observations[2].startswith("error: not run")
    assert observations[3].startswith("error: not run: at most 3 tool calls run from one turn (cap reached)")
    system = gateway.requests[0].messages[0]
    assert system.role == "system" and "s0 said" not in system.content and "find the doc" not in system.content
    store.close()
