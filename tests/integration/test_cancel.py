"""Stopping runs end to end: a person's cancel of a 300-step run mid-way (and after a restart of the whole
app), and runs stopped by their token or wall-clock budget."""

from __future__ import annotations

import time

from actors.runtime import wiring
from actors.runtime.typed import blocking
from core.schemas import RunView
from maos_testing.llm.sim_thread import SimHandle
from tests.integration.conftest import ask, wait_run


def _idle(app: wiring.App, timeout_s: float = 240.0) -> None:
    """Wait (with a deadline) until no step is in flight: the stopped steps have been reported (a pool that
    is still starting on a loaded 2-core machine reports its handed-over steps once it is up)."""
    deadline = time.monotonic() + timeout_s
    while blocking(app.dispatcher.in_flight(), timeout=30) > 0:
        assert time.monotonic() < deadline, f"steps still in flight: {blocking(app.dispatcher.in_flight_by_agent(), timeout=30)}"
        time.sleep(0.1)


def _pools_up(app: wiring.App) -> None:
    for handles in app.pools.values():
        for pool in handles:
            assert blocking(pool.ping(), timeout=240)


def _assert_stopped(view: RunView, acked: float) -> None:
    assert view.run.status == "cancelled" and view.run.error == "cancelled by u1"
    statuses = {t.status for t in view.tasks}
    assert statuses <= {"done", "cancelled"} and "cancelled" in statuses
    assert all(t.started_at is None or t.started_at <= acked for t in view.tasks)  # none started after the ack
    done = [t for t in view.tasks if t.status == "done"]
    assert view.run.summary is not None and f"{len(done)} of {len(view.tasks)} steps finished" in view.run.summary


def test_cancelling_a_300_step_run_midway_stops_it_and_a_restart_does_not_bring_it_back(
        make_app, sim: SimHandle, tmp_path) -> None:
    sim.update(ttft_ms=100, token_ms=10, timed_tokens_cap=20)
    data = tmp_path / "shared-data"
    app = make_app(data_dir=data)
    _pools_up(app)  # what is measured is the cancel, not a pool still starting (they start one by one)
    run_id = ask(app, "[fanout 300] [slow 0.3] check in with every customer")
    wait_run(app, run_id, until=lambda v: sum(t.status == "done" for t in v.tasks) >= 10, timeout_s=240)
    out = blocking(app.master.cancel(run_id=run_id, user_id="u1", reason="cancelled by u1"), timeout=60)
    acked = time.time()
    assert out.cancelled and out.status == "cancelled"
    assert not blocking(app.master.cancel(run_id=run_id, user_id="u1", reason="again"), timeout=60).cancelled  # idempotent
    _idle(app)
    view = blocking(app.store.get_run(run_id), timeout=30)
    assert view is not None
    _assert_stopped(view, acked)
    assert 0 < sum(t.status == "done" for t in view.tasks) < 300
    started = {t.id for t in view.tasks if t.started_at is not None}
    assert {r["task_id"] for r in sim.log() if r.get("task_id")} <= started  # no LLM call for a step never started
    assert all(a.created_at <= acked for a in blocking(app.store.list_actions(user_id="u1", status=None, run_id=run_id, limit=1000),
                                                       timeout=30))

    wiring.kill_app(app)
    again = make_app(data_dir=data)
    # The restarted app dispatches (a new run finishes) and the cancelled run stays as it was.
    other = ask(again, "[fanout 3] say hello to each")
    assert wait_run(again, other).run.status == "done"
    after = blocking(again.store.get_run(run_id), timeout=30)
    assert after is not None
    assert [(t.id, t.status, t.attempts) for t in after.tasks] == [(t.id, t.status, t.attempts) for t in view.tasks]
    _assert_stopped(after, acked)


def test_a_token_budget_stops_a_run_once_its_recorded_tokens_pass_it(module_app, sim: SimHandle) -> None:
    app = module_app
    limit = 3000
    run = blocking(app.master.submit(message="[fanout 60] [slow 0.3] write to every supplier", user_id="u1",
                                     max_tokens=limit), timeout=60)
    view = wait_run(app, run.id, timeout_s=180)
    assert view.run.status == "cancelled", view.run.error
    assert view.run.error is not None and view.run.error.startswith(f"token budget of {limit} reached")
    usage = blocking(app.store.run_usage(run.id), timeout=30)
    assert usage.tokens_in + usage.tokens_out > limit
    assert any(t.status == "cancelled" for t in view.tasks)


def test_a_wall_clock_budget_stops_a_run(module_app, sim: SimHandle) -> None:
    app = module_app
    run = blocking(app.master.submit(message="[fanout 20] [slow 2] call every lead", user_id="u1", deadline_s=3.0),
                   timeout=60)
    started = time.monotonic()
    view = wait_run(app, run.id, timeout_s=120)
    assert view.run.status == "cancelled", view.run.error
    assert view.run.error == "wall-clock budget of 3 s reached"
    assert time.monotonic() - started < 30
    assert any(t.status == "cancelled" for t in view.tasks)
