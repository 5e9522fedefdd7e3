"""The dispatcher, and a pool's queries for its tools, against a real Store (a DuckDB file)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from actors.dispatcher import Dispatcher
from actors.handles import LocalHandle
from actors.store import Store
from core.schemas import Assignment, Plan, PlanStep
from core.settings import Settings


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


async def test_a_pools_tool_queries_of_a_moment_reach_the_store_in_one_call_each_with_its_own_answer(tmp_path: Path) -> None:
    from actors.pool import _StoreForTools

    store = Store(str(tmp_path / "maos.duckdb"))
    handle = _Recorded(store, "store")
    tools = _StoreForTools(handle)
    await tools.write("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)")
    writes = [tools.write("INSERT INTO notes VALUES (?, ?) RETURNING id", [i, f"note {i}"]) for i in range(5)]
    clash = tools.write("INSERT INTO notes VALUES (?, ?)", [0, "again"])  # id 0 is taken: this one fails alone
    bad = tools.read("SELECT nothing FROM nowhere")
    answers = await asyncio.gather(*writes, clash, bad, return_exceptions=True)

    assert answers[:5] == [[(i,)] for i in range(5)]
    assert isinstance(answers[5], Exception) and "0" in str(answers[5])
    assert isinstance(answers[6], Exception) and "nowhere" in str(answers[6])
    assert await tools.read("SELECT count(*) FROM notes") == [(5,)]
    assert handle.asked == ["tool_calls"] * 3  # the table, the seven queries together, the count
    store.close()
