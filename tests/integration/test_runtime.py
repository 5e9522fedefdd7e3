"""The runtime end to end on one shared local Ray against the simulated LLM server."""

from __future__ import annotations

import time
from collections import Counter

import ray

from integrations.llm.sim_thread import SimHandle
from tests.integration.conftest import ask, wait_run


def test_a_request_is_planned_run_and_summarized(make_app, sim: SimHandle) -> None:
    app = make_app()
    run_id = ask(app, "follow up with every lead tagged webinar and draft a summary for the team")
    view = wait_run(app, run_id)
    assert view.run.status == "done", view.run.error
    assert view.run.plan is not None and len(view.tasks) >= 2
    assert {t.status for t in view.tasks} == {"done"}
    assert view.run.summary
    kinds = Counter(r["kind"] for r in sim.log())
    assert kinds["plan"] == 1 and kinds["tool_call"] >= len(view.tasks) and kinds["final"] >= len(view.tasks)
    # Idle, the dispatcher sleeps until woken (or a backstop of a few times a second), not every 50 ms.
    asked = lambda: ray.get(app.store.actor.__ray_call__.remote(lambda store: store.claims_asked))  # noqa: E731
    before = asked()
    time.sleep(2.0)
    assert asked() - before <= 12


def _finals_by_task(sim: SimHandle) -> Counter[str]:
    return Counter(r["task_id"] for r in sim.log() if r["kind"] == "final" and r["status"] == 200)


def test_300_subagents_in_one_plan_each_finish_exactly_once(make_app, sim: SimHandle) -> None:
    sim.update(ttft_ms=100, token_ms=10)
    app = make_app()
    run_id = ask(app, "[fanout 300] check in with every customer")
    view = wait_run(app, run_id, timeout_s=240)
    assert view.run.status == "done", view.run.error
    assert len(view.tasks) == 300
    assert all(t.status == "done" and t.attempts == 1 and t.result for t in view.tasks)
    finals = _finals_by_task(sim)
    assert set(finals) == {t.id for t in view.tasks}
    assert set(finals.values()) == {1}
    rows = app.store.get("read", "SELECT task_id, count(*) FROM agent_runs WHERE kind = 'subagent' AND ok "
                         "GROUP BY task_id HAVING count(*) > 1", [])
    assert rows == []
    llm_rows = app.store.get("read", "SELECT count(*), sum(tokens_out) FROM agent_runs WHERE kind = 'llm' AND run_id = ?", [run_id])
    assert llm_rows[0][0] >= 601 and llm_rows[0][1] > 0  # plan + 2 turns per step (+ summary), tokens recorded


def test_killing_a_pool_actor_mid_run_loses_nothing_and_completes_each_step_once(make_app, sim: SimHandle) -> None:
    from actors import runtime

    app = make_app()
    run_id = ask(app, "[fanout 32] [slow 0.5] draft a note to each account")
    # Wait until the email pool has sub-agents in flight, then kill it like a crash.
    wait_run(app, run_id, until=lambda v: any(t.status == "running" and t.agent == "email" for t in v.tasks))
    victim = app.pools["email"][0]
    turns = lambda: ray.get(victim.actor.__ray_call__.remote(lambda pool: pool._settings.max_turns))  # noqa: E731
    app.store.get("save_settings_overrides", {"max_turns": 5}, timeout=30)  # as the settings page saves it
    assert turns() == 6
    runtime.kill_actor(victim, restart=True)
    view = wait_run(app, run_id, timeout_s=120)
    assert turns() == 5  # the restarted pool came back with the saved settings, not its start-up ones
    assert view.run.status == "done", view.run.error
    assert all(t.status == "done" for t in view.tasks)
    retried = [t for t in view.tasks if t.attempts > 1]
    assert retried and all(t.agent == "email" for t in retried)
    done_rows = app.store.get("read", "SELECT task_id, count(*) FROM agent_runs WHERE kind = 'subagent' AND ok "
                              "AND run_id = ? GROUP BY task_id", [run_id])
    assert sorted(r[0] for r in done_rows) == sorted(t.id for t in view.tasks)
    assert {r[1] for r in done_rows} == {1}
    drafts = app.store.get("read", "SELECT task_id, count(*) FROM drafts GROUP BY task_id HAVING count(*) > 1", [])
    assert drafts == []


def test_killing_and_restarting_the_app_mid_run_resumes_and_finishes(make_app, sim: SimHandle, tmp_path) -> None:
    from actors import runtime

    data = tmp_path / "shared-data"
    app = make_app(data_dir=data)
    run_id = ask(app, "[fanout 24] [slow 0.5] research each competitor")
    wait_run(app, run_id, until=lambda v: any(t.status == "running" for t in v.tasks))
    runtime.kill_app(app)
    again = make_app(data_dir=data)
    view = wait_run(again, run_id, timeout_s=120)
    assert view.run.status == "done", view.run.error
    assert len(view.tasks) == 24 and all(t.status == "done" for t in view.tasks)
    assert any(t.attempts > 1 for t in view.tasks)  # the interrupted ones ran again


def test_a_plan_that_is_broken_twice_then_valid_succeeds(make_app, sim: SimHandle) -> None:
    app = make_app(plan_repairs=2)
    view = wait_run(app, ask(app, "[broken-json 2] write the weekly summary"))
    assert view.run.status == "done", view.run.error
    assert sum(1 for r in sim.log() if r["kind"] == "plan") == 3


def test_a_model_that_never_gives_a_valid_plan_fails_clearly(make_app, sim: SimHandle) -> None:
    app = make_app(plan_repairs=2)
    view = wait_run(app, ask(app, "[broken-json always] write the weekly summary"))
    assert view.run.status == "failed"
    assert view.run.error is not None and "no valid plan in 3 attempts" in view.run.error
    assert "not valid JSON" in view.run.error
    assert view.tasks == []


def test_llm_server_down_steps_wait_with_a_clear_error_then_finish(make_app, sim: SimHandle) -> None:
    app = make_app(llm_timeout_s=5)
    run_id = ask(app, "[fanout 6] [slow 0.3] tidy each record")
    wait_run(app, run_id, until=lambda v: any(t.status == "running" for t in v.tasks))
    sim.stop()
    try:
        waiting = wait_run(app, run_id, timeout_s=60, until=lambda v: any(
            (t.error or "").startswith("waiting: LLM server at") for t in v.tasks))
        assert waiting.run.status == "running"
        assert all(t.status != "dead" for t in waiting.tasks)
    finally:
        sim.start()
    view = wait_run(app, run_id, timeout_s=90)
    assert view.run.status == "done", view.run.error
    assert all(t.status == "done" and t.attempts == 1 for t in view.tasks)  # waiting spent no attempt


def test_a_step_that_always_fails_goes_dead_after_the_attempt_limit_and_blocks_dependents(make_app, sim: SimHandle) -> None:
    app = make_app(max_attempts=3)
    view = wait_run(app, ask(app, "[fail-step] email the new leads"))
    assert view.run.status == "failed"
    dead = [t for t in view.tasks if t.status == "dead"]
    assert len(dead) == 1 and dead[0].attempts == 3 and "InternalServerError" in (dead[0].error or "")
    blocked = [t for t in view.tasks if t.status == "blocked"]
    assert blocked and all(dead[0].step_id in t.depends_on or t.depends_on for t in blocked)
    assert not any(r["task_id"] == blocked[0].id for r in sim.log())  # never ran
    assert view.run.summary and view.run.error and "did not finish" in view.run.error
