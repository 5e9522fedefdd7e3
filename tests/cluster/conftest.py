"""Cluster tier: one multi-node Ray for the session, made with Ray's own test tool
(``ray.cluster_utils.Cluster``: a head and two worker nodes on this machine, each its own raylet),
with token authentication on as the product's is, and the head's dashboard (Ray's state API and
metrics) on 127.0.0.1.

This tier runs in a pytest process of its own (``make test``: one Ray per process): it refuses to
start when Ray is already initialised in the process.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import ray._private.utils as ray_utils
from ray.cluster_utils import Cluster

from actors.runtime import wiring
from core.settings import ensure_ray_token
from integrations.llm.backend import resolve
from maos_testing.llm.sim_thread import SimHandle
from tests._cluster import app_settings

NAMESPACE = "maos-cluster-test"
WORKER_NODES = 2
NODE_CPUS = 1  # the actors ask for no CPU; a node's CPUs only size its pre-started worker processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dashboard_url(cluster: Cluster) -> str:
    """The head's Ray dashboard (state API, Jobs API), on 127.0.0.1."""
    assert cluster.head_node is not None
    url = str(cluster.head_node.webui_url)
    return url if url.startswith("http") else f"http://{url}"


def metrics_url(cluster: Cluster) -> str:
    """The head's Prometheus export of Ray's metrics (``ray.util.metrics`` included)."""
    assert cluster.head_node is not None
    return f"http://127.0.0.1:{cluster.head_node.metrics_export_port}/metrics"


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A head and two worker nodes, token auth on; the driver connected to it. Shut down at session end."""
    if ray.is_initialized():
        pytest.fail("tests/cluster needs a Ray of its own: Ray is already initialised in this process "
                    "(run the tier alone: `.venv/bin/python -m pytest tests/cluster`)", pytrace=False)
    token_path = tmp_path_factory.mktemp("ray") / "ray_token"
    ensure_ray_token(token_path)
    wiring.use_token_auth(token_path)  # every node below is a child process: they inherit it
    head = dict(num_cpus=NODE_CPUS, include_dashboard=True, dashboard_host="127.0.0.1",
                dashboard_port=_free_port(), dashboard_agent_listen_port=_free_port(),
                metrics_export_port=_free_port())
    # Ray's Cluster writes its address to /tmp/ray/ray_current_cluster, where any other process's bare
    # ray.init() (another test run on this machine) would then join it: not here.
    real_write = ray_utils.write_ray_address
    ray_utils.write_ray_address = lambda *args, **kwargs: None
    try:
        cluster = Cluster(initialize_head=True, head_node_args=head)
        for _ in range(WORKER_NODES):
            cluster.add_node(num_cpus=NODE_CPUS)
    finally:
        ray_utils.write_ray_address = real_write
    try:
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
        yield cluster
    finally:
        try:
            from ray import serve

            serve.shutdown()
        except Exception:  # serve never started in this tier
            pass
        ray.shutdown()
        cluster.shutdown()


def alive_node_ids() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}


def node_id_of(node: Any) -> str:
    """The Ray node id of one of the Cluster's nodes (``cluster.head_node``, a worker node)."""
    return str(node.node_id)


def start_cluster_app(data_dir: Path, base_url: str, **overrides: Any) -> wiring.App:
    """An app in the cluster, with small settings (one pool per type per node) unless overridden."""
    values: dict[str, Any] = {"pool_actors": 1, **overrides}
    settings = app_settings(data_dir, base_url, **values)
    return wiring.start_app(settings, asyncio.run(resolve(settings)))


@pytest.fixture(autouse=True)
def _fresh_sim(fresh_sim: SimHandle) -> None:
    pass


@pytest.fixture
def cluster_app(ray_cluster: Cluster, sim: SimHandle,
                tmp_path: Path) -> Iterator[Callable[..., wiring.App]]:
    """Start apps in the cluster (``cluster_app(**settings)``); each is killed at the test's end."""
    apps: list[wiring.App] = []

    def start(data_dir: Path | None = None, **overrides: Any) -> wiring.App:
        app = start_cluster_app(data_dir if data_dir is not None else tmp_path / "data", sim.base_url, **overrides)
        apps.append(app)
        return app

    yield start
    for app in apps:
        wiring.kill_app(app)
