"""Cancelling a run and its budget, on :memory: through the Store (no Ray)."""

from __future__ import annotations

import pytest

from actors.storage.queue import RetryPolicy
from actors.store import Store
from core.budget import Budget
from core.errors import NotFound, ToolError
from core.schemas import Plan, PlanStep, StepOutcome
from core.storage_schemas import StoredAction

OWNERS = {a: [f"{a}/0"] for a in ("leads", "email", "writing")}
LIMITS = {"leads": 10, "email": 10, "writing": 10}


def _plan(n: int = 6) -> Plan:
    steps = [PlanStep(id=f"s{i}", agent="writing", instruction=f"write {i}") for i in range(n)]
    steps.append(PlanStep(id="after", agent="email", instruction="mail", depends_on=["s0"]))
    return Plan(goal="g", steps=steps)


async def _running(store: Store, user: str = "u1") -> str:
    run = await store.create_run("hello", user, budget=Budget(max_tokens=100, deadline_s=60))
    await store.enqueue_plan(run.id, _plan(), max_attempts=2)
    return run.id


def _action(key: str, run_id: str, status: str = "pending") -> StoredAction:
    return StoredAction(id=f"act_{key}", user_id="u1", run_id=run_id, task_id=f"{run_id}:s1", action="send_email",
                        status=status, args_hash="h", ciphertext=b"c", nonce=b"n", key_id="k", idempotency_key=key,
                        group="g", replaces=None, created_at=1.0, expires_at=10**10, decided_by=None,
                        decided_at=None)


async def test_cancel_stops_every_step_not_final_withdraws_proposals_and_lists_what_was_done() -> None:
    store = Store(":memory:", retry=RetryPolicy(base_s=0, max_s=0))
    run_id = await _running(store)
    claimed = await store.claim({"writing": 3}, OWNERS, 30)
    assert len(claimed) == 3
    first, second = claimed[0][0], claimed[1][0]
    await store.complete([StepOutcome(task_id=first.id, attempt=1, ok=True, result="wrote it")])
    await store.insert_action(_action("p1", run_id))
    await store.insert_action(_action("p2", run_id, status="approved"))

    out = await store.cancel_run(run_id, "u1", "cancelled by u1")

    assert out.cancelled and out.status == "cancelled"
    assert sorted(out.stopped_steps) == sorted(t.id for t, _, _ in claimed[1:])
    assert out.withdrawn == ["act_p1"]
    view = await store.get_run(run_id)
    assert view is not None and view.run.status == "cancelled" and view.run.error == "cancelled by u1"
    assert {t.status for t in view.tasks if t.id != first.id} == {"cancelled"}
    assert view.run.summary is not None and "1 of 7 steps finished" in view.run.summary
    assert "wrote it" in view.run.summary
    # nothing is claimed again, a late outcome of a stopped step is fenced out, nothing more is proposed
    assert await store.claim(LIMITS, OWNERS, 30) == []
    accepted, _ = await store.complete([StepOutcome(task_id=second.id, attempt=1, ok=False, error="x")])
    assert accepted == []
    with pytest.raises(ToolError, match="stopped"):
        await store.insert_action(_action("p3", run_id))
    statuses = {a.id: a.status for a in await store.list_actions("u1", None, run_id, 10)}
    assert statuses == {"act_p1": "withdrawn", "act_p2": "approved"}
    # a task event per cancelled step, and the run's end
    kinds = [(e.kind, e.status) for e in await store.run_events(run_id)]
    assert kinds.count(("task", "cancelled")) == 6 and kinds[-1] == ("end", "cancelled")


async def test_cancel_is_idempotent_and_nothing_brings_the_run_back() -> None:
    store = Store(":memory:", retry=RetryPolicy(base_s=0, max_s=0))
    run_id = await _running(store)
    (task, _, _), = await store.claim({"writing": 1}, OWNERS, 30)
    await store.complete([StepOutcome(task_id=task.id, attempt=1, ok=False, error="boom", retryable=False)])
    assert (await store.cancel_run(run_id, None, "stop")).cancelled
    again = await store.cancel_run(run_id, None, "stop")
    assert not again.cancelled and again.status == "cancelled" and again.stopped_steps == []
    # recovery, a manual retry, a late plan or a late end change nothing
    assert await store.reclaim_foreign([]) == ([], [])
    assert not await store.requeue(task.id)
    await store.enqueue_plan(run_id, _plan(2), max_attempts=1)
    await store.finish_run(run_id, "done", "all good", None)
    await store.set_run_status(run_id, "summarizing")
    assert await store.claim(LIMITS, OWNERS, 30) == []
    assert await store.unfinished_runs_with_no_open_tasks() == []
    view = await store.get_run(run_id)
    assert view is not None and view.run.status == "cancelled" and len(view.tasks) == 7


async def test_a_run_cancelled_while_planned_gets_no_steps_and_an_ended_run_stays_as_it_ended() -> None:
    store = Store(":memory:")
    run = await store.create_run("hello", "u1")
    assert (await store.cancel_run(run.id, "u1", "stop")).cancelled
    await store.enqueue_plan(run.id, _plan(), max_attempts=1)
    view = await store.get_run(run.id)
    assert view is not None and view.tasks == [] and view.run.status == "cancelled"
    done = await store.create_run("other", "u1")
    await store.finish_run(done.id, "done", "fine", None)
    out = await store.cancel_run(done.id, "u1", "stop")
    assert not out.cancelled and out.status == "done"


async def test_only_the_runs_owner_can_cancel_it() -> None:
    store = Store(":memory:")
    run_id = await _running(store, user="u1")
    with pytest.raises(NotFound):
        await store.cancel_run(run_id, "u2", "stop")
    with pytest.raises(NotFound):
        await store.cancel_run("nope", None, "stop")
    view = await store.get_run(run_id)
    assert view is not None and view.run.status == "running"


async def test_budget_usage_counts_llm_tokens_of_unfinished_runs() -> None:
    store = Store(":memory:")
    run_id = await _running(store)
    other = await store.create_run("no budget", "u1")
    await store.record_llm_calls([
        {"run_id": run_id, "task_id": f"{run_id}:s0", "agent": "writing", "model": "m", "tokens_in": 30,
         "tokens_out": 12, "latency_ms": 1.0, "queued_ms": 0.0, "ok": True, "created_at": 1.0},
        {"run_id": run_id, "task_id": f"{run_id}:s1", "agent": "writing", "model": "m", "tokens_in": 50,
         "tokens_out": 20, "latency_ms": 1.0, "queued_ms": 0.0, "ok": True, "created_at": 1.0},
    ])
    usage = {rid: (b, used) for rid, b, used, _ in await store.budget_usage()}
    assert usage[run_id] == (Budget(max_tokens=100, deadline_s=60), 112)
    assert usage[other.id] == (None, 0)
    await store.cancel_run(run_id, None, "stop")
    assert run_id not in {rid for rid, _, _, _ in await store.budget_usage()}
