"""`make bench`, cluster part (``BENCH_PARTS=cluster``): what spreading over nodes and over LLM endpoints
costs, on one machine.

- **nodes**: the same 1,000-step fan-out on one node and on three (Ray's own test ``Cluster``: a head and
  two worker raylets), with as many pools in both (``pool_actors`` 3 on one node, 1 a node on three: 24).
  One machine, so this is the overhead of spreading (more raylets, calls between them), not a speed-up.
- **endpoints**: the fan-out against one simulated LLM server with 2·S slots, and against two with S each
  (``llm_endpoints``): the same total slots.

Each configuration runs ``repeats`` times; the ratio is of the medians of the steps' wall time.
"""

from __future__ import annotations

import socket
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

SLOTS = 200  # total LLM slots of the endpoints part (in flight: twice that)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(base: str, **overrides: Any) -> Any:
    from core.settings import Settings

    values: dict[str, Any] = dict(
        data_dir=Path(tempfile.mkdtemp()) / "data", llm_provider="ollama", llm_base_url=base, llm_model="sim-model",
        llm_slots=2000, max_in_flight=1000, per_type_in_flight=1000, gateway_replicas=2,
        namespace=f"bench{uuid.uuid4().hex[:6]}", log_level="WARNING")
    values.update(overrides)
    return Settings(**values)


def _runs(settings: Any, base: str, n: int, repeats: int) -> list[dict[str, Any]]:
    """An app with ``settings``, its pools all answering, then ``repeats`` fan-outs of ``n`` steps."""
    import ray

    from actors.runtime import wiring
    from benchmarks.run import _fanout
    from integrations.llm.backend import Backend

    backend = Backend(provider="ollama", base_url=base, planner_model="sim-model", worker_model="sim-model")
    app = wiring.start_app(settings, backend)
    try:
        refs = [wiring.ray_actor(p).ping.remote() for ps in app.pools.values() for p in ps]
        ray.get(refs, timeout=600)
        _fanout(app, base, 10)  # warm: every pool's first step (imports, first LLM connection) out of the figures
        runs = []
        for _ in range(repeats):
            runs.append(_fanout(app, base, n))
            print(f"  {n} steps in {runs[-1]['steps_wall_s']:.2f} s", flush=True)
        return runs
    finally:
        wiring.kill_app(app)


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["steps_wall_s"] for r in runs]
    return {"steps_wall_s": statistics.median(walls), "steps_wall_s_runs": walls,
            "steps_per_s": statistics.median(r["steps_per_s"] for r in runs),
            "all_done": all(r["all_done"] for r in runs)}


def run_cluster(base: str, second_base: str, n: int = 1000, repeats: int = 3) -> dict[str, Any]:
    """Both parts in one Ray ``Cluster`` started here (token auth on, as the product's), shut down after."""
    import ray
    import ray._private.utils as ray_utils
    from ray.cluster_utils import Cluster

    from actors.runtime import wiring
    from core.settings import ensure_ray_token

    token = Path(tempfile.mkdtemp()) / "ray_token"
    ensure_ray_token(token)
    wiring.use_token_auth(token)
    real_write = ray_utils.write_ray_address  # no address file: another process's bare ray.init() must not join
    ray_utils.write_ray_address = lambda *args, **kwargs: None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "include_dashboard": False, "dashboard_agent_listen_port": _free_port()})
    finally:
        ray_utils.write_ray_address = real_write
    out: dict[str, Any] = {"steps": n, "repeats": repeats}
    try:
        ray.init(address=cluster.address, namespace="bench-cluster", log_to_driver=False)
        print("cluster: endpoints (one, then two at equal slots)…", flush=True)
        one_ep = _runs(_settings(base, llm_endpoints=f"{base}={SLOTS}", pool_actors=3), base, n, repeats)
        two_ep = _runs(_settings(base, llm_endpoints=f"{base}={SLOTS // 2},{second_base}={SLOTS // 2}", pool_actors=3),
                       base, n, repeats)
        out["endpoints"] = {"slots": SLOTS, "one": _summary(one_ep), "two": _summary(two_ep)}
        out["endpoints"]["ratio"] = out["endpoints"]["two"]["steps_wall_s"] / out["endpoints"]["one"]["steps_wall_s"]
        print("cluster: one node…", flush=True)
        one = _runs(_settings(base, pool_actors=3), base, n, repeats)
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        deadline = time.monotonic() + 60
        while sum(1 for x in ray.nodes() if x.get("Alive")) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        print("cluster: three nodes…", flush=True)
        three = _runs(_settings(base, pool_actors=1), base, n, repeats)
        out["nodes"] = {"pools": 24, "one": _summary(one), "three": _summary(three)}
        out["nodes"]["ratio"] = out["nodes"]["three"]["steps_wall_s"] / out["nodes"]["one"]["steps_wall_s"]
    finally:
        ray.shutdown()
        cluster.shutdown()
    return out


def print_cluster(r: dict[str, Any]) -> None:
    print(f"\ncluster ({r['steps']}-step fan-out, medians of {r['repeats']} runs; one machine: the cost of spreading)")
    for part, a, b in (("nodes", "one", "three"), ("endpoints", "one", "two")):
        if part not in r:
            continue
        p = r[part]
        print(f"{part:>9}: {a} {p[a]['steps_wall_s']:.2f} s ({p[a]['steps_per_s']:.0f} steps/s), "
              f"{b} {p[b]['steps_wall_s']:.2f} s ({p[b]['steps_per_s']:.0f} steps/s); ratio {p['ratio']:.2f}")
