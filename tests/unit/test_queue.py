"""Queue state transitions and migrations on :memory:, through the Store (no Ray)."""

from __future__ import annotations

import asyncio

import duckdb
import pytest

from actors.storage.commit import GroupCommit
from actors.storage.events import EventLog
from actors.storage.migrations import MIGRATIONS, migrate
from actors.storage.queue import RetryPolicy
from actors.store import Store
from core.schemas import Plan, PlanStep, StepOutcome, TaskRecord


def test_migrations_apply_in_order_once() -> None:
    conn = duckdb.connect(":memory:")
    assert migrate(conn) == [v for v, _, _ in sorted(MIGRATIONS)]
    assert migrate(conn) == []
    tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    for name in ("users", "sessions", "oauth_credentials", "conversations", "messages", "tasks",
                 "agent_runs", "memory_entries", "audit_log", "runs", "schema_migrations"):
        assert name in tables


def _plan() -> Plan:
    return Plan(goal="g", steps=[
        PlanStep(id="a", agent="leads", instruction="find"),
        PlanStep(id="b", agent="email", instruction="mail", depends_on=["a"]),
        PlanStep(id="c", agent="writing", instruction="sum", depends_on=["b"]),
        PlanStep(id="d", agent="writing", instruction="other"),
    ])


async def _started(store: Store) -> str:
    run = await store.create_run("hello", "u1")
    await store.enqueue_plan(run.id, _plan(), max_attempts=2)
    return run.id


OWNERS = {a: [f"{a}/0"] for a in ("leads", "email", "writing")}


async def test_dependencies_gate_readiness_and_run_finishes() -> None:
    store = Store(":memory:", retry=RetryPolicy(base_s=0, max_s=0))
    run_id = await _started(store)
    claimed = await store.claim({"leads": 10, "email": 10, "writing": 10}, OWNERS, 30)
    assert sorted(t.step_id for t, _, _ in claimed) == ["a", "d"]
    accepted, finished = await store.complete(
        [StepOutcome(task_id=t.id, attempt=t.attempts, ok=True, result=f"r-{t.step_id}") for t, _, _ in claimed]
    )
    assert len(accepted) == 2 and finished == []
    (b, owner, ctx), = await store.claim({"leads": 10, "email": 10, "writing": 10}, OWNERS, 30)
    assert b.step_id == "b" and owner == "email/0" and "r-a" in ctx
    await store.complete([StepOutcome(task_id=b.id, attempt=1, ok=True, result="r-b")])
    (c, _, _), = await store.claim({"writing": 10}, OWNERS, 30)
    _, finished = await store.complete([StepOutcome(task_id=c.id, attempt=1, ok=True, result="r-c")])
    assert finished == [run_id]
    view = await store.get_run(run_id)
    assert view is not None and {t.status for t in view.tasks} == {"done"}


async def test_late_completion_of_an_old_attempt_is_refused() -> None:
    store = Store(":memory:", retry=RetryPolicy(base_s=0, max_s=0))
    await _started(store)
    claimed = await store.claim({"leads": 1}, OWNERS, 30)
    task = claimed[0][0]
    ids, _ = await store.reclaim(["leads/0"])  # its worker died
    assert ids == [task.id]
    (again, _, _), = await store.claim({"leads": 1}, OWNERS, 30)
    assert again.attempts == 2
    stale, _ = await store.complete([StepOutcome(task_id=task.id, attempt=1, ok=True, result="old")])
    assert stale == []
    fresh, _ = await store.complete([StepOutcome(task_id=task.id, attempt=2, ok=True, result="new")])
    assert fresh == [task.id]
    assert (await store.get_task(task.id)).result == "new"  # type: ignore[union-attr]


async def test_attempt_limit_then_dead_blocks_dependents_and_retry_requeues() -> None:
    store = Store(":memory:", retry=RetryPolicy(base_s=0, max_s=0))
    run_id = await _started(store)
    for attempt in (1, 2):
        (t, _, _), = await store.claim({"leads": 1}, OWNERS, 30)
        assert t.attempts == attempt
        await store.complete([StepOutcome(task_id=t.id, attempt=attempt, ok=False, error="boom")])
    a = await store.get_task(f"{run_id}:a")
    assert a is not None and a.status == "dead" and a.error == "boom" and a.attempts == 2
    assert (await store.get_task(f"{run_id}:b")).status == "blocked"  # type: ignore[union-attr]
    assert (await store.get_task(f"{run_id}:c")).status == "blocked"  # type: ignore[union-attr]
    assert await store.claim({"leads": 1}, OWNERS, 30) == []
    assert await store.requeue(a.id)
    assert (await store.get_task(f"{run_id}:b")).status == "pending"  # type: ignore[union-attr]
    (t, _, _), = await store.claim({"leads": 1}, OWNERS, 30)
    assert t.id == a.id and t.attempts == 1


async def test_waiting_for_the_llm_refunds_the_attempt() -> None:
    store = Store(":memory:", retry=RetryPolicy(base_s=0, max_s=0, wait_s=0))
    await _started(store)
    (t, _, _), = await store.claim({"leads": 1}, OWNERS, 30)
    await store.complete([StepOutcome(task_id=t.id, attempt=1, ok=False, wait=True, error="LLM down")])
    again = await store.get_task(t.id)
    assert again is not None and again.status == "ready" and again.attempts == 0
    assert again.error is not None and again.error.startswith("waiting:")


async def test_expired_lease_is_reclaimed() -> None:
    store = Store(":memory:", retry=RetryPolicy(base_s=0, max_s=0))
    await _started(store)
    (t, _, _), = await store.claim({"leads": 1}, OWNERS, lease_s=-1)
    ids, _ = await store.reclaim(None)
    assert ids == [t.id]
    assert (await store.get_task(t.id)).status == "failed"  # type: ignore[union-attr]


async def test_a_bad_write_fails_alone_in_its_batch() -> None:
    conn = duckdb.connect(":memory:")
    migrate(conn)
    db = GroupCommit(conn, EventLog(), interval_s=0.01)
    good = db.submit(lambda c: c.execute("INSERT INTO users (id, name, email, created_at) VALUES ('u1', 'n', NULL, 0)") and None)
    bad = db.submit(lambda c: c.execute("INSERT INTO no_such_table VALUES (1)"))
    results = await asyncio.gather(good, bad, return_exceptions=True)
    assert results[0] is None and isinstance(results[1], duckdb.Error)
    assert db.commits == 1  # the batch rolled back; the good write, retried alone, committed
    assert conn.execute("SELECT id FROM users").fetchall() == [("u1",)]


@pytest.mark.parametrize("n", [1, 300])
async def test_fanout_enqueue_and_claim_respects_limits(n: int) -> None:
    store = Store(":memory:")
    run = await store.create_run("x", "u")
    plan = Plan(goal="g", steps=[PlanStep(id=f"s{i}", agent="email", instruction="i") for i in range(n)])
    await store.enqueue_plan(run.id, plan, 3)
    claimed = await store.claim({"email": 100}, {"email": ["e/0", "e/1"]}, 30)
    assert len(claimed) == min(n, 100)
    assert {o for _, o, _ in claimed} == ({"e/0", "e/1"} if n > 1 else {"e/0"})
    assert (await store.queue_counts()).get("running") == min(n, 100)


async def test_claim_takes_each_types_oldest_first_within_its_limit_and_spreads_them_over_the_pool() -> None:
    store = Store(":memory:")
    run = await store.create_run("x", "u")
    steps = [PlanStep(id=f"e{i}", agent="email", instruction="i") for i in range(6)]
    steps += [PlanStep(id=f"l{i}", agent="leads", instruction="i") for i in range(3)]
    await store.enqueue_plan(run.id, Plan(goal="g", steps=steps), 3)
    # e0 failed once and waits out its retry delay: it is not due.
    first = await store.claim({"email": 1}, {"email": ["e/0"]}, 30)
    await store.complete([StepOutcome(task_id=first[0][0].id, attempt=1, ok=False, error="x")])
    claimed = await store.claim({"email": 4, "leads": 2, "writing": 5}, {"email": ["e/0", "e/1"], "leads": ["l/0"]}, 30)
    by_type = {a: sorted(t.step_id for t, _, _ in claimed if t.agent == a) for a in ("email", "leads")}
    assert by_type == {"email": ["e1", "e2", "e3", "e4"], "leads": ["l0", "l1"]}
    owners = [o for t, o, _ in claimed if t.agent == "email"]
    assert sorted(owners) == ["e/0", "e/0", "e/1", "e/1"]


async def test_an_idle_claim_skips_the_query_until_a_task_may_be_ready_or_a_retry_falls_due() -> None:
    store = Store(":memory:", retry=RetryPolicy(base_s=0.6, max_s=0.6))
    limits = {"leads": 10, "email": 10, "writing": 10}
    run_id = await _started(store)
    claimed = await store.claim(limits, OWNERS, 30)
    assert await store.claim(limits, OWNERS, 30) == []  # b and c wait on a and d
    commits = store.commits
    assert await store.claim(limits, OWNERS, 30) == []
    assert store.commits == commits  # nothing written since: no query, no transaction
    await store.save_settings_overrides({"max_turns": 3})  # writes that ready no task
    await store.record_llm_calls([{"run_id": run_id, "agent": "leads", "ok": True, "created_at": 0.0}])
    commits = store.commits
    assert await store.claim(limits, OWNERS, 30) == [] and store.commits == commits  # readies no task: still none
    a = next(t for t, _, _ in claimed if t.step_id == "a")
    d = next(t for t, _, _ in claimed if t.step_id == "d")
    await store.complete([StepOutcome(task_id=a.id, attempt=1, ok=True, result="r-a"),
                          StepOutcome(task_id=d.id, attempt=1, ok=False, error="flaky")])
    (b, _, _), = await store.claim(limits, OWNERS, 30)  # released by a's completion
    assert b.step_id == "b"
    assert await store.claim(limits, OWNERS, 30) == []  # d retries in 0.3-0.6 s
    commits = store.commits
    assert await store.claim(limits, OWNERS, 30) == [] and store.commits == commits
    await asyncio.sleep(0.65)
    (again, _, _), = await store.claim(limits, OWNERS, 30)
    assert again.id == d.id and again.attempts == 2 and again.run_id == run_id


async def test_reports_arriving_together_commit_as_one_completion_and_each_caller_hears_its_own_part() -> None:
    store = Store(":memory:", commit_interval_s=0.05)
    runs = []
    for message in ("first", "second"):
        run = await store.create_run(message, "u")
        await store.enqueue_plan(run.id, Plan(goal="g", steps=[
            PlanStep(id=f"s{i}", agent="email", instruction="i") for i in range(3)]), 3)
        runs.append(run.id)
    claimed = [t for t, _, _ in await store.claim({"email": 10}, {"email": ["e/0"]}, 30)]
    one, two = ([t for t in claimed if t.run_id == r] for r in runs)

    def ok(tasks: list[TaskRecord]) -> list[StepOutcome]:
        return [StepOutcome(task_id=t.id, attempt=t.attempts, ok=True, result=f"r-{t.id}") for t in tasks]

    commits = store.commits
    late_failure = StepOutcome(task_id=one[0].id, attempt=one[0].attempts, ok=False, error="resent")
    a, b, c = await asyncio.gather(store.complete(ok(one[:2] + two)), store.complete(ok(one[2:])),
                                   store.complete([late_failure]))
    assert store.commits == commits + 1  # one transaction for the three reports
    assert a == (sorted(t.id for t in one[:2] + two), sorted(runs))  # every run finished is told once
    assert b == ([one[2].id], [])
    assert c == ([], [])  # the same task reported again: the first report counted
    for run_id in runs:
        view = await store.get_run(run_id)
        assert view is not None and all(t.status == "done" and t.result == f"r-{t.id}" for t in view.tasks)
        done = [e.task_id for e in await store.run_events(run_id) if e.kind == "task" and e.status == "done"]
        assert sorted(done) == sorted(t.id for t in view.tasks)  # one event each


async def test_a_step_records_the_node_its_pool_ran_it_on_in_its_record_and_event() -> None:
    """A pool's owner id names its node (<type>/<node>/<i>/<epoch>): a claimed step keeps it, past its
    end and into its next attempt's claim; an owner id of another form names none."""
    store = Store(":memory:", retry=RetryPolicy(base_s=0, max_s=0))
    run_id = await _started(store)
    owners = {"leads": ["leads/3f2a1b9c/0/ep1"], "writing": ["w-0"]}
    claimed = {t.step_id: t for t, _, _ in await store.claim({"leads": 1, "writing": 1}, owners, 30)}
    assert claimed["a"].node == "3f2a1b9c" and claimed["d"].node is None
    assert await store.running_by_node() == {"3f2a1b9c": 1}  # steps running there now
    await store.complete([StepOutcome(task_id=claimed["a"].id, attempt=1, ok=True, result="r")])
    assert await store.running_by_node() == {}
    await store.flush()
    view = await store.get_run(run_id)
    assert view is not None
    a = next(t for t in view.tasks if t.step_id == "a")
    assert a.status == "done" and a.node == "3f2a1b9c"
    running = [e for e in await store.run_events(run_id) if e.kind == "task" and e.status == "running"]
    assert {(e.step_id, e.node) for e in running} == {("a", "3f2a1b9c"), ("d", None)}
