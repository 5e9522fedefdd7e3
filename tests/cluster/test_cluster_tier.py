"""The tier's own cluster: three raylets, token authentication on, the head's dashboard (state API) and
metrics export answering on 127.0.0.1."""

from __future__ import annotations

import httpx
import ray
from ray.cluster_utils import Cluster
from ray.util.state import list_nodes

from tests._cluster import wait_for
from tests.cluster.conftest import dashboard_url, metrics_url


def test_the_tier_runs_a_head_and_two_workers_with_token_auth(ray_cluster: Cluster) -> None:
    wait_for("three alive nodes", lambda: sum(1 for n in ray.nodes() if n.get("Alive")) == 3)
    assert len(ray_cluster.worker_nodes) == 2
    raylets = {n.raylet_socket_name for n in (ray_cluster.head_node, *ray_cluster.worker_nodes)}
    assert len(raylets) == 3  # each node its own raylet
    url = dashboard_url(ray_cluster)
    assert url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{url}/api/v0/nodes", timeout=30).status_code == 401  # no token: refused
    nodes = list_nodes(address=url, limit=1000)  # the dead ones of earlier tests too (removed, replaced)
    assert sum(1 for n in nodes if n.state == "ALIVE") == 3
    wait_for("Ray's metrics export", lambda: _answers(metrics_url(ray_cluster)), timeout_s=60)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
