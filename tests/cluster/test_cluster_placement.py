"""Placement on a three-node cluster (Ray's ``Cluster``: a head and two workers on this machine): pools on
every node and steps run on each; a worker lost mid-run costs retries, never a step or a duplicate effect;
a node that joins gets pools without a restart.

The tests share the tier's cluster; each leaves it with three alive nodes (the loss test adds a new
worker for the one it removed; the join test removes one before its app starts, then adds one)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from actors.runtime import cluster_info, wiring
from actors.runtime.placement import node_of_owner, short
from actors.runtime.typed import blocking
from core.errors import ActorGone
from tests._cluster import wait_for
from tests.cluster.conftest import NODE_CPUS, alive_node_ids
from tests.integration.conftest import ask, wait_run


def _pool_stats(app: wiring.App) -> list[dict[str, object]]:
    """Each pool's stats (owner, in flight, completed); a pool that is gone is left out."""
    out = []
    for pools in app.pools.values():
        for pool in pools:
            try:
                out.append(blocking(pool.stats(), timeout=30))
            except ActorGone:
                continue
    return out


def _nodes_of_pools(app: wiring.App) -> dict[str, set[str]]:
    """Agent type -> the short ids of the nodes its pools are on."""
    return {agent: {node_of_owner(wiring.ray_handle(p).name) for p in pools} for agent, pools in app.pools.items()}


def _all_pools_answer(app: wiring.App) -> bool:
    refs = [wiring.ray_actor(p).ping.remote() for pools in app.pools.values() for p in pools]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=2.0)
    return len(ready) == len(refs)


def _completed_by_node(app: wiring.App) -> Counter[str]:
    by_node: Counter[str] = Counter()
    for s in _pool_stats(app):
        by_node[node_of_owner(str(s["owner"]))] += int(str(s["completed"]))
    return by_node


def _drafted_twice(app: wiring.App) -> list[str]:
    tasks = [d.task_id for d in blocking(app.store.list_drafts(run_id=None, limit=100_000), timeout=30)]
    return sorted({t for t in tasks if tasks.count(t) > 1})


def _wait_nodes(n: int) -> None:
    wait_for(f"{n} alive nodes", lambda: len(alive_node_ids()) == n, timeout_s=120)


def test_a_300_step_plan_runs_with_pools_on_all_three_nodes(ray_cluster: Cluster,
                                                            cluster_app: Callable[..., wiring.App]) -> None:
    _wait_nodes(3)
    nodes = {short(n) for n in alive_node_ids()}
    app = cluster_app()
    # Every type has a pool on every node, and the Store, Memory and gateways stay on the head.
    assert all(on == nodes for on in _nodes_of_pools(app).values()), _nodes_of_pools(app)
    head = short(str(ray_cluster.head_node.node_id))
    for actor in (app.store, app.memory, *app.gateways, app.dispatcher, app.master):
        node = ray.get(wiring.ray_actor(actor).__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id()))
        assert short(node) == head
    wait_for("every pool to answer", lambda: _all_pools_answer(app), timeout_s=240)
    run_id = ask(app, "[fanout 300] [slow 0.3] write a note for each account")
    view = wait_run(app, run_id, timeout_s=300)
    assert view.run.status == "done", view.run.error
    assert len(view.tasks) == 300 and all(t.status == "done" for t in view.tasks)
    by_node = _completed_by_node(app)
    assert set(by_node) == nodes and all(by_node[n] > 0 for n in nodes), by_node  # steps ran on every node
    assert sum(by_node.values()) >= 300
    # The run itself says where each step ran (the run view, as the chat and `maos ask` show it)
    ran_on = Counter(t.node for t in view.tasks)
    assert set(ran_on) == nodes and sum(ran_on.values()) == 300, ran_on
    # The Agents page's machines: the three, the head first, nothing running once the run is done
    machines = cluster_info.machines(blocking(app.store.running_by_node(), timeout=30))
    assert [m.node for m in machines if m.alive][0] == head and machines[0].head
    assert {m.node for m in machines if m.alive} == nodes and all(m.steps_running == 0 for m in machines)


def test_a_worker_node_lost_mid_run_loses_nothing_and_duplicates_no_effect(
        ray_cluster: Cluster, cluster_app: Callable[..., wiring.App]) -> None:
    _wait_nodes(3)
    app = cluster_app()
    wait_for("every pool to answer", lambda: _all_pools_answer(app), timeout_s=240)
    victim = sorted(ray_cluster.worker_nodes, key=lambda n: str(n.node_id))[0]
    lost = short(str(victim.node_id))
    run_id = ask(app, "[fanout 48] [slow 8] draft a note to each account")
    wait_for("steps in flight on the node to lose", lambda: any(
        node_of_owner(str(s["owner"])) == lost and int(str(s["in_flight"])) > 0 for s in _pool_stats(app)))
    try:
        ray_cluster.remove_node(victim, allow_graceful=False)  # as a machine's power cut would
        view = wait_run(app, run_id, timeout_s=300)
        assert view.run.status == "done", view.run.error
        assert len(view.tasks) == 48 and all(t.status == "done" for t in view.tasks)
        assert any(t.attempts > 1 for t in view.tasks)  # the lost node's steps ran again elsewhere
        assert blocking(app.store.run_usage(run_id), timeout=30).step_runs == {t.id: 1 for t in view.tasks}
        assert _drafted_twice(app) == []
        # The lost node's pools are dropped (not restarted anywhere), the others stay.
        wait_for("the lost node's pools dropped", lambda: all(lost not in on for on in _nodes_of_pools(app).values()))
        assert all(len(on) == 2 for on in _nodes_of_pools(app).values())
        status = blocking(app.dispatcher.status(), timeout=30)
        assert all(p.actors == 2 for p in status), status
    finally:
        ray_cluster.add_node(num_cpus=NODE_CPUS)  # the tier's cluster has three nodes again
        _wait_nodes(3)


def test_a_node_that_joins_gets_pools_without_a_restart(ray_cluster: Cluster,
                                                        cluster_app: Callable[..., wiring.App]) -> None:
    _wait_nodes(3)
    leaving = sorted(ray_cluster.worker_nodes, key=lambda n: str(n.node_id))[0]
    ray_cluster.remove_node(leaving)
    _wait_nodes(2)
    app = cluster_app()
    before = {short(n) for n in alive_node_ids()}
    assert all(on == before for on in _nodes_of_pools(app).values())
    joined = ray_cluster.add_node(num_cpus=NODE_CPUS)
    new = short(str(joined.node_id))
    wait_for("the new node's pools", lambda: all(new in on for on in _nodes_of_pools(app).values()), timeout_s=120)
    wait_for("every pool to answer", lambda: _all_pools_answer(app), timeout_s=240)
    status = blocking(app.dispatcher.status(), timeout=30)
    assert all(p.actors == 3 for p in status), status  # the dispatcher hands work to them
    run_id = ask(app, "[fanout 96] [slow 0.5] write a note for each account")
    view = wait_run(app, run_id, timeout_s=300)
    assert view.run.status == "done", view.run.error
    assert _completed_by_node(app)[new] > 0  # steps ran on the node that joined


def test_the_app_stopped_and_started_again_on_the_head_resumes_its_run_from_duckdb(
        ray_cluster: Cluster, cluster_app: Callable[..., wiring.App], tmp_path: Path) -> None:
    _wait_nodes(3)
    data = tmp_path / "head-data"
    app = cluster_app(data_dir=data)
    run_id = ask(app, "[fanout 48] [slow 1.0] research each competitor")
    wait_run(app, run_id, until=lambda v: sum(t.status == "running" for t in v.tasks) >= 8)
    wiring.kill_app(app)  # the head's app stops mid-run, every node's pools with it
    again = cluster_app(data_dir=data)
    view = wait_run(again, run_id, timeout_s=300)
    assert view.run.status == "done", view.run.error
    assert len(view.tasks) == 48 and all(t.status == "done" for t in view.tasks)
    assert any(t.attempts > 1 for t in view.tasks)  # the interrupted ones ran again
    assert {node_of_owner(wiring.ray_handle(p).name) for ps in again.pools.values() for p in ps} == {
        short(n) for n in alive_node_ids()}
