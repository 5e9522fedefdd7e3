"""Each sub-agent a task of its pool's own, named for Ray's dashboard: the names, what the figures call
a step's end, and that a stopped run's steps still stop (before they begin, and at an LLM call)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from actors.pool import SubAgentPool, step_end, step_task_name
from actors.runtime.handles import LocalHandle
from actors.runtime.named_tasks import LocalTasks, task_name
from core.chat_schemas import ChatMessage, ChatRequest, ChatResponse
from core.schemas import Assignment, StepOutcome, TaskRecord
from core.settings import Settings


def _assignment(run_id: str = "run1", step_id: str = "s1", attempt: int = 1, max_attempts: int = 3) -> Assignment:
    task = TaskRecord(id=f"{run_id}:{step_id}", run_id=run_id, step_id=step_id, agent="writing", instruction="write it",
                      depends_on=[], status="running", attempts=attempt, max_attempts=max_attempts,
                      idempotency_key=f"{run_id}:{step_id}", created_at=1, updated_at=1)
    return Assignment(task=task, attempt=attempt, lease_owner="writing/0", context="")


def test_a_sub_agents_task_is_named_by_agent_type_run_and_step_and_its_attempt_from_the_second() -> None:
    assert step_task_name("email", _assignment("3f9a0c", "s3")) == "email 3f9a0c s3"
    assert step_task_name("email", _assignment("3f9a0c", "s3", attempt=2)) == "email 3f9a0c s3 try 2"


def test_a_names_parts_stay_apart_and_a_long_name_is_cut() -> None:
    assert task_name("email", "step one", "") == "email step_one -"
    long = task_name("research", "r" * 200)
    assert len(long) == 120 and long.startswith("research rrr") and long.endswith("…")


def test_a_steps_end_is_named_as_the_queue_will_decide_it() -> None:
    a, last = _assignment(attempt=1, max_attempts=3), _assignment(attempt=3, max_attempts=3)

    def outcome(**kw: Any) -> StepOutcome:
        return StepOutcome(task_id=a.task.id, attempt=1, **kw)

    assert step_end(outcome(ok=True, result="r"), a, cancelled=False) == "done"
    assert step_end(outcome(ok=False, error="x"), a, cancelled=False) == "retried"
    assert step_end(outcome(ok=False, error="x"), last, cancelled=False) == "dead"
    assert step_end(outcome(ok=False, error="x", retryable=False), a, cancelled=False) == "dead"
    assert step_end(outcome(ok=False, error="x", wait=True), last, cancelled=False) == "waiting"
    assert step_end(outcome(ok=False, error="x", wait_on="google"), last, cancelled=False) == "waiting"
    assert step_end(outcome(ok=False, error="stopped", retryable=False), a, cancelled=True) == "cancelled"


class _Gateway:
    """An LLM that answers each request at once, or never (``hold``: until cancelled)."""

    def __init__(self, hold: bool) -> None:
        self.hold = hold
        self.asked = asyncio.Event()
        self.cancelled: list[str] = []

    async def chat_many(self, reqs: list[ChatRequest]) -> AsyncIterator[list[tuple[int, ChatResponse]]]:
        self.asked.set()
        if self.hold:
            await asyncio.Event().wait()
        yield [(i, ChatResponse(message=ChatMessage(role="assistant", content="done"), model="fake"))
               for i in range(len(reqs))]

    async def cancel_run(self, run_id: str) -> int:
        self.cancelled.append(run_id)
        return 0


class _Reports:
    def __init__(self) -> None:
        self.outcomes: list[StepOutcome] = []

    async def report(self, owner: str, outcomes: list[StepOutcome]) -> None:
        self.outcomes += outcomes


class _NamedTasks(LocalTasks):
    """Starts tasks as the pool's would, noting the names Ray would show."""

    def __init__(self, obj: Any) -> None:
        super().__init__(obj)
        self.started: list[tuple[str, str, tuple[Any, ...]]] = []

    def start(self, method: str, name: str, *args: Any) -> None:
        self.started.append((method, name, args))
        super().start(method, name, *args)


def _pool(tmp_path: Path, gateway: _Gateway, reports: _Reports) -> tuple[SubAgentPool, _NamedTasks]:
    pool = SubAgentPool("writing", "writing/0", Settings(data_dir=tmp_path), LocalHandle(gateway),
                        LocalHandle(object(), "store"), LocalHandle(reports))
    tasks = _NamedTasks(pool)
    pool._tasks = tasks
    return pool, tasks


async def _outcomes(reports: _Reports, n: int) -> list[StepOutcome]:
    deadline = asyncio.get_running_loop().time() + 10
    while len(reports.outcomes) < n and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    return reports.outcomes


async def test_each_handed_step_runs_as_a_task_of_the_pools_own_named_for_it_and_only_its_id_crosses(
        tmp_path: Path) -> None:
    reports = _Reports()
    pool, tasks = _pool(tmp_path, _Gateway(hold=False), reports)
    handed = [_assignment("run1", "s1"), _assignment("run1", "s2", attempt=2)]
    await pool.run(handed, {"run1": ("notes", "u1")})
    assert tasks.started == [("step", "writing run1 s1", ("run1:s1",)), ("step", "writing run1 s2 try 2", ("run1:s2",))]
    outcomes = await _outcomes(reports, 2)
    assert sorted((o.task_id, o.ok) for o in outcomes) == [("run1:s1", True), ("run1:s2", True)]
    assert (await pool.stats())["in_flight"] == 0
    await pool.step("run1:s1")  # a step already run, asked again: nothing happens
    await asyncio.sleep(0.05)
    assert len(reports.outcomes) == 2


async def test_a_stopped_runs_step_stops_at_its_llm_call_and_one_not_yet_begun_never_asks(tmp_path: Path) -> None:
    reports = _Reports()
    gateway = _Gateway(hold=True)
    pool, _ = _pool(tmp_path, gateway, reports)
    await pool.run([_assignment("run1", "s1")], {"run1": ("notes", "u1")})
    await asyncio.wait_for(gateway.asked.wait(), 10)  # at work: waiting on the LLM
    assert await pool.cancel("run1") == 1
    (outcome,) = await _outcomes(reports, 1)
    assert (outcome.task_id, outcome.ok, outcome.retryable) == ("run1:s1", False, False)
    assert outcome.error is not None and outcome.error.startswith("cancelled")

    gateway.asked.clear()
    await pool.run([_assignment("run2", "s1")], {"run2": ("notes", "u1")})
    assert await pool.cancel("run2") == 1  # handed over, its task not begun yet
    outcomes = await _outcomes(reports, 2)
    assert [(o.task_id, o.ok) for o in outcomes[1:]] == [("run2:s1", False)]
    assert not gateway.asked.is_set() and gateway.cancelled == ["run1", "run2"]
