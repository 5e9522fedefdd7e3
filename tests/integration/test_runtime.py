"""The runtime end to end on one shared local Ray against the simulated LLM server, on one app for the
module (the tests that kill actors or need other settings are in test_recovery)."""

from __future__ import annotations

import time
from collections import Counter

import ray

from actors.runtime import wiring
from actors.runtime.typed import blocking
from maos_testing.llm.sim_thread import SimHandle
from tests.integration.conftest import ask, wait_run


def test_a_request_is_planned_run_and_summarized(module_app, sim: SimHandle) -> None:
    app = module_app
    run_id = ask(app, "follow up with every lead tagged webinar and draft a summary for the team")
    view = wait_run(app, run_id)
    assert view.run.status == "done", view.run.error
    assert view.run.plan is not None and len(view.tasks) >= 2
    assert {t.status for t in view.tasks} == {"done"}
    assert view.run.summary
    kinds = Counter(r["kind"] for r in sim.log())
    assert kinds["plan"] == 1 and kinds["tool_call"] >= len(view.tasks) and kinds["final"] >= len(view.tasks)
    # Idle, the dispatcher sleeps until woken (or a backstop of a few times a second), not every 50 ms.
    asked = lambda: ray.get(wiring.ray_actor(app.store).__ray_call__.remote(lambda store: store.claims_asked))  # noqa: E731
    before = asked()
    time.sleep(2.0)
    assert asked() - before <= 12


def _finals_by_task(sim: SimHandle) -> Counter[str]:
    return Counter(r["task_id"] for r in sim.log() if r["kind"] == "final" and r["status"] == 200)


def test_300_subagents_in_one_plan_each_finish_exactly_once(module_app, sim: SimHandle) -> None:
    # Each reply takes 100 ms + 10 ms a token, so the steps overlap; the plan's timing is capped like
    # the others' (300 steps are ~7,500 tokens: 75 s of simulated writing, not the system's time).
    sim.update(ttft_ms=100, token_ms=10, timed_tokens_cap=20)
    app = module_app
    run_id = ask(app, "[fanout 300] check in with every customer")
    view = wait_run(app, run_id, timeout_s=240)
    assert view.run.status == "done", view.run.error
    assert len(view.tasks) == 300
    assert all(t.status == "done" and t.attempts == 1 and t.result for t in view.tasks)
    finals = _finals_by_task(sim)
    assert set(finals) == {t.id for t in view.tasks}
    assert set(finals.values()) == {1}
    usage = blocking(app.store.run_usage(run_id), timeout=30)
    assert usage.step_runs == {t.id: 1 for t in view.tasks}  # each step finished by a sub-agent once
    assert usage.llm_calls >= 601 and usage.tokens_out > 0  # plan + 2 turns per step (+ summary), tokens recorded


def test_a_plan_that_is_broken_twice_then_valid_succeeds(module_app, sim: SimHandle) -> None:
    app = module_app
    assert app.settings.plan_repairs == 2
    view = wait_run(app, ask(app, "[broken-json 2] write the weekly summary"))
    assert view.run.status == "done", view.run.error
    assert sum(1 for r in sim.log() if r["kind"] == "plan") == 3


def test_a_model_that_never_gives_a_valid_plan_fails_clearly(module_app, sim: SimHandle) -> None:
    app = module_app
    view = wait_run(app, ask(app, "[broken-json always] write the weekly summary"))
    assert view.run.status == "failed"
    assert view.run.error is not None and "no valid plan in 3 attempts" in view.run.error
    assert "not valid JSON" in view.run.error
    assert view.tasks == []


def test_a_step_that_always_fails_goes_dead_after_the_attempt_limit_and_blocks_dependents(module_app, sim: SimHandle) -> None:
    app = module_app
    assert app.settings.max_attempts == 3
    view = wait_run(app, ask(app, "[fail-step] email the new leads"))
    assert view.run.status == "failed"
    dead = [t for t in view.tasks if t.status == "dead"]
    assert len(dead) == 1 and dead[0].attempts == 3 and "InternalServerError" in (dead[0].error or "")
    blocked = [t for t in view.tasks if t.status == "blocked"]
    assert blocked and all(dead[0].step_id in t.depends_on or t.depends_on for t in blocked)
    assert not any(r["task_id"] == blocked[0].id for r in sim.log())  # never ran
    assert view.run.summary and view.run.error and "did not finish" in view.run.error
