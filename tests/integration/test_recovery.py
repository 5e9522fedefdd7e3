"""Recovery end to end: a pool or the gateway killed mid-run (Ray restarts it; the app lives on), the
whole app killed, the LLM server down. The actor kills share one app; the others have their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray

from actors.runtime import wiring
from actors.runtime.typed import blocking
from maos_testing.llm.sim_thread import SimHandle
from tests.integration.conftest import app_for_module, ask, wait_run


@pytest.fixture(scope="module")
def restarted_app(ray_session: None, sim: SimHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[wiring.App]:
    """One app for the tests that kill one of its actors and let Ray restart it (each test's run ends
    before the next starts; the pool test leaves max_turns saved at 5)."""
    yield from app_for_module(tmp_path_factory, "restarted-app", sim.base_url)


def _drafted_twice(app: wiring.App) -> list[str]:
    """Steps with more than one draft (a step retried after a crash must find its first one)."""
    tasks = [d.task_id for d in blocking(app.store.list_drafts(run_id=None, limit=100_000), timeout=30)]
    return sorted({t for t in tasks if tasks.count(t) > 1})


def test_killing_a_pool_actor_mid_run_loses_nothing_and_completes_each_step_once(restarted_app, sim: SimHandle) -> None:
    app = restarted_app
    run_id = ask(app, "[fanout 32] [slow 0.5] draft a note to each account")
    # Wait until the email pool has sub-agents in flight, then kill it like a crash.
    wait_run(app, run_id, until=lambda v: any(t.status == "running" and t.agent == "email" for t in v.tasks))
    victim = app.pools["email"][0]
    turns = lambda: ray.get(wiring.ray_actor(victim).__ray_call__.remote(lambda pool: pool._settings.max_turns))  # noqa: E731
    blocking(app.store.save_settings_overrides({"max_turns": 5}), timeout=30)  # as the settings page saves it
    assert turns() == 6
    wiring.kill_actor(victim, restart=True)
    view = wait_run(app, run_id, timeout_s=120)
    assert turns() == 5  # the restarted pool came back with the saved settings, not its start-up ones
    assert view.run.status == "done", view.run.error
    assert all(t.status == "done" for t in view.tasks)
    retried = [t for t in view.tasks if t.attempts > 1]
    assert retried and all(t.agent == "email" for t in retried)
    assert blocking(app.store.run_usage(run_id), timeout=30).step_runs == {t.id: 1 for t in view.tasks}
    assert _drafted_twice(app) == []


def test_killing_the_llm_gateway_mid_run_its_steps_wait_and_finish_once(restarted_app, sim: SimHandle) -> None:
    # Pools reach the gateway through batched calls whose replies stream back: the gateway dying
    # mid-stream fails every request still waiting in it, and their steps wait (spending no attempt).
    app = restarted_app
    run_id = ask(app, "[fanout 16] [slow 1.0] draft a note to each account")
    wait_run(app, run_id, until=lambda v: sum(t.status == "running" for t in v.tasks) >= 8)
    wiring.kill_actor(app.gateways[0], restart=True)
    view = wait_run(app, run_id, timeout_s=120)
    assert view.run.status == "done", view.run.error
    assert all(t.status == "done" and t.attempts == 1 for t in view.tasks)
    events = blocking(app.store.run_events(run_id=run_id, after=0, wait_s=0.0, limit=100_000), timeout=30)
    assert any(e.kind == "task" and e.status == "retried" and (e.error or "").startswith(
        "waiting: LLM gateway unavailable") for e in events)  # the kill did land on steps in flight
    assert blocking(app.store.run_usage(run_id), timeout=30).step_runs == {t.id: 1 for t in view.tasks}
    assert _drafted_twice(app) == []


def test_killing_and_restarting_the_app_mid_run_resumes_and_finishes(make_app, sim: SimHandle, tmp_path) -> None:
    data = tmp_path / "shared-data"
    app = make_app(data_dir=data)
    run_id = ask(app, "[fanout 24] [slow 0.5] research each competitor")
    wait_run(app, run_id, until=lambda v: any(t.status == "running" for t in v.tasks))
    wiring.kill_app(app)
    again = make_app(data_dir=data)
    view = wait_run(again, run_id, timeout_s=120)
    assert view.run.status == "done", view.run.error
    assert len(view.tasks) == 24 and all(t.status == "done" for t in view.tasks)
    assert any(t.attempts > 1 for t in view.tasks)  # the interrupted ones ran again


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
