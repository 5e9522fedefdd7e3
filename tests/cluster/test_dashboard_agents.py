"""Hundreds of agents in Ray's dashboard (issue 22 item 5): during a run, Ray's state API (what the
dashboard shows) lists each sub-agent at work as a task named after its agent type, run and step,
with its node and state; and Ray's metrics export has the runtime's figures."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import ray
from ray.cluster_utils import Cluster
from ray.util.state import list_tasks

from actors.runtime import wiring
from actors.runtime.typed import blocking
from tests._cluster import wait_for
from tests.cluster.conftest import alive_node_ids, dashboard_url, metrics_url, node_id_of

STEPS = 12
FIGURES = {"maos_subagents_in_flight", "maos_steps", "maos_llm_calls", "maos_llm_latency_ms", "maos_llm_tokens",
           "maos_queue_ready"}
_SAMPLE = re.compile(r'^ray_(maos_\w+?)(?:_total|_bucket|_sum|_count)?\{(.*)\} (\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _named(cluster: Cluster, run_id: str) -> dict[str, list[dict[str, object]]]:
    """Ray's tasks whose name mentions ``run_id``, by name (a step's attempts share its name's stem)."""
    found: dict[str, list[dict[str, object]]] = {}
    for t in list_tasks(address=dashboard_url(cluster), limit=10_000, raise_on_missing_output=False, timeout=30):
        name = str(t.name)
        if f" {run_id} " in f"{name} ":
            found.setdefault(name, []).append({"state": t.state, "node_id": t.node_id, "actor_id": t.actor_id})
    return found


def test_rays_state_api_lists_each_sub_agent_at_work_by_name_with_its_node_and_the_metrics_export_has_the_figures(
        ray_cluster: Cluster, cluster_app: Callable[..., wiring.App]) -> None:
    app = cluster_app()
    run = blocking(app.master.submit(message=f"[fanout {STEPS}] [slow 4] write a note for each account",
                                     user_id="local", conversation_id=None), timeout=120)
    seen_running: dict[str, str] = {}  # task name -> the node Ray says it ran on, while RUNNING

    def all_seen_at_work() -> bool:
        for name, rows in _named(ray_cluster, run.id).items():
            for row in rows:
                if row["state"] == "RUNNING":  # a retried step's later attempt is named '... try N'
                    seen_running[re.sub(r" try \d+$", "", name)] = str(row["node_id"])
        return len(seen_running) == STEPS

    wait_for(f"Ray's state API to list the run's {STEPS} sub-agents at work", all_seen_at_work, timeout_s=240)
    view = blocking(app.store.get_run(run.id), timeout=60)
    assert view is not None
    expected = {f"{t.agent} {run.id} {t.step_id}" for t in view.tasks}
    assert set(seen_running) == expected
    assert set(seen_running.values()) <= alive_node_ids()

    wait_for("the run to finish", lambda: _status(app, run.id) == "done", timeout_s=240)
    wait_for("each sub-agent's task to be listed as finished",
             lambda: all(any(r["state"] == "FINISHED" for r in rows) for rows in _named(ray_cluster, run.id).values()),
             timeout_s=120)

    samples: list[tuple[str, dict[str, str], float]] = []

    def exported() -> bool:  # Ray's metrics agents export every few seconds; every node's, for the pools elsewhere
        samples[:] = [s for url in _metrics_urls(ray_cluster) for s in _samples(_scrape(url))]
        names = {name for name, _, _ in samples}
        done = sum(v for name, labels, v in samples if name == "maos_steps" and labels.get("outcome") == "done")
        agents = {labels["agent"] for name, labels, _ in samples if name == "maos_subagents_in_flight"}
        return FIGURES <= names and done >= STEPS and agents >= {t.agent for t in view.tasks}  # each node's, in its time

    wait_for("the runtime's figures in Ray's metrics export", exported, timeout_s=120)
    calls = [labels for name, labels, v in samples if name == "maos_llm_calls" and v > 0]
    assert calls and all(re.fullmatch(r"http://127\.0\.0\.1:\d+", c["endpoint"]) for c in calls)
    in_flight = [labels for name, labels, _ in samples if name == "maos_subagents_in_flight"]
    assert {labels["node"] for labels in in_flight} <= alive_node_ids()
    tokens = {labels["direction"] for name, labels, v in samples if name == "maos_llm_tokens" and v > 0}
    assert tokens == {"in", "out"}


def _metrics_urls(cluster: Cluster) -> list[str]:
    """The head's metrics export, then every other live node's."""
    others = [f"http://127.0.0.1:{n['MetricsExportPort']}/metrics" for n in ray.nodes()
              if n.get("Alive") and n.get("MetricsExportPort") and n["NodeID"] != node_id_of(cluster.head_node)]
    return [metrics_url(cluster), *others]


def _scrape(url: str) -> str:
    try:
        r = httpx.get(url, timeout=10)
    except httpx.HTTPError:
        return ""
    return r.text if r.status_code == 200 else ""


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """The runtime's samples in Prometheus text: (name without Ray's prefix and suffixes, labels, value)."""
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out.append((m.group(1), dict(_LABEL.findall(m.group(2))), float(m.group(3))))
    return out


def _status(app: wiring.App, run_id: str) -> str | None:
    progress = blocking(app.store.run_progress(run_id), timeout=60)
    return progress.status if progress is not None else None
