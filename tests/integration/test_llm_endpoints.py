"""Two simulated LLM servers as two endpoints of one app: one stopped mid-run, the run finishes on the
other with no step attempt spent and the endpoint is reported down; started again on its port, it is
back in and takes work again."""

from __future__ import annotations

from typing import Any

from actors.runtime import wiring
from actors.runtime.typed import blocking
from maos_testing.llm.sim_thread import SimConfig, sim_llm_in_thread
from tests._cluster import wait_for
from tests.integration.conftest import ask, wait_run


def _endpoints(app: wiring.App) -> dict[str, dict[str, Any]]:
    health = blocking(app.gateways[0].health(), timeout=30)
    return {e["url"]: e for e in health["endpoints"]}


def test_a_stopped_endpoint_costs_no_attempt_and_takes_work_again_once_back(make_app) -> None:
    with sim_llm_in_thread(SimConfig()) as one, sim_llm_in_thread(SimConfig()) as two:
        app = make_app(llm_base_url=one.base_url, llm_endpoints=f"{one.base_url}=6,{two.base_url}=6",
                       llm_health_interval_s=0.5, llm_retries=0)
        eps = _endpoints(app)
        assert set(eps) == {one.base_url, two.base_url} and all(e["up"] and e["slots"] == 6 for e in eps.values())

        run_id = ask(app, "[fanout 24] [slow 0.5] draft a note to each account")
        wait_for("both servers take steps", lambda: one.stats()["requests"] > 2 and two.stats()["requests"] > 2)
        two.stop()  # its requests in flight are cut off; new ones are refused
        at_stop = one.stats()["requests"]
        progress = blocking(app.store.run_progress(run_id), timeout=30)
        assert progress is not None and progress.status == "running"  # mid-run
        view = wait_run(app, run_id, timeout_s=180)
        assert view.run.status == "done", view.run.error
        assert len(view.tasks) == 24 and one.stats()["requests"] > at_stop  # finished on the other
        # llm_retries=0: a request that failed on the stopped server and was not sent on would fail its step
        assert all(t.status == "done" and t.attempts == 1 for t in view.tasks), [
            (t.step_id, t.attempts, t.error) for t in view.tasks]
        events = blocking(app.store.run_events(run_id=run_id, after=0, wait_s=0.0, limit=100_000), timeout=30)
        assert not [e for e in events if e.kind == "task" and e.status in ("retried", "failed")]  # none saw it
        assert blocking(app.store.run_usage(run_id), timeout=30).step_runs == {t.id: 1 for t in view.tasks}
        down = _endpoints(app)[two.base_url]
        assert not down["up"] and down["last_error"]

        two.start()  # on the same port
        wait_for("the endpoint is back", lambda: _endpoints(app)[two.base_url]["up"], timeout_s=30)
        before = two.stats()["requests"]
        again = wait_run(app, ask(app, "[fanout 12] [slow 0.2] check in with each account"), timeout_s=180)
        assert again.run.status == "done", again.run.error
        assert two.stats()["requests"] > before  # it takes work again
