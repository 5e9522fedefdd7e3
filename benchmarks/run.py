"""`make bench`: the runtime against the simulated LLM server, with a plain-asyncio baseline.

Prints a table and writes JSON to benchmarks/results/. Figures are medians over repeats where
a run is cheap enough to repeat; ratios compare against a baseline measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from actors.runtime.typed import blocking
from benchmarks.store_bench import store_bench

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _start_sim(ttft_ms: float, token_ms: float, reply_tokens: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "maos_testing.llm.sim_server", "--port", "0", "--ttft-ms", str(ttft_ms),
         "--token-ms", str(token_ms), "--reply-tokens", str(reply_tokens), "--slots", "5000"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    base = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    import httpx

    # Replies are timed as reply_tokens long, the plan of a 1,000-step fanout included.
    httpx.post(f"{base}/_sim/config", json={"timed_tokens_cap": reply_tokens}, timeout=10).raise_for_status()
    return proc, base


def _sim_log(base: str, clear: bool = True) -> list[dict[str, Any]]:
    import httpx

    return list(httpx.get(f"{base}/_sim/log", params={"clear": "1"} if clear else {}, timeout=30).json())


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


# --- baseline: the same sub-agent turns with plain asyncio and the same litellm client ---------


async def _baseline(base: str, n: int) -> dict[str, float]:
    """The n sub-agent turns with plain asyncio in this process: wall time; each call's time from the
    start to its first request at the server (the floor under the system's dispatch overhead: litellm's
    own work for the calls before it); and this process's memory growth per call in flight."""
    from actors.agents import get, tools_for
    from actors.agents.subagent import subagent_messages
    from core.chat_schemas import ChatMessage, ChatRequest
    from integrations.llm import client
    from integrations.llm.backend import Backend

    backend = Backend(provider="ollama", base_url=base, planner_model="sim-model", worker_model="sim-model")
    spec = get("writing")
    tools = [t.spec() for t in tools_for(spec)]

    async def one(i: int) -> None:
        msgs = subagent_messages(spec, task_id=f"b:{i}", goal="g", instruction=f"Handle item {i} of {n}: write a note")
        r = await client.complete(backend, ChatRequest(messages=msgs, tools=tools), 120)
        msgs.append(r.message)
        for call in r.message.tool_calls:
            msgs.append(ChatMessage(role="tool", content="ok: saved", tool_call_id=call.id, name=call.name))
        await client.complete(backend, ChatRequest(messages=msgs, tools=tools), 120)

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], _rss_of(os.getpid()))
            await asyncio.sleep(0.05)

    _sim_log(base)
    idle = _rss_of(os.getpid())
    peak = [idle]
    sampler = asyncio.get_running_loop().create_task(sample())
    started_at, started = time.time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - started
    sampler.cancel()
    first: dict[str, float] = {}
    for r in _sim_log(base):
        tid = r.get("task_id")
        if tid and tid.startswith("b:") and (tid not in first or r["t_received"] < first[tid]):
            first[tid] = r["t_received"]
    to_server = [(t - started_at) * 1000 for t in first.values()]
    return {"wall_s": wall, "start_to_server_ms_p50": _pct(to_server, 0.5), "start_to_server_ms_p99": _pct(to_server, 0.99),
            "kb_per_in_flight": (peak[0] - idle) / 1024 / n}


# --- the system -------------------------------------------------------------------------------


def _fanout(app: Any, base: str, n: int) -> dict[str, Any]:
    _sim_log(base)
    sampling: dict[str, Any] = {"peak": 0, "in_flight": 0}
    pids = _app_pids(app)
    idle = sum(_rss_of(p) for p in pids)
    run = blocking(app.master.submit(message=f"[fanout {n}] write a note for each account", user_id="bench", conversation_id=None), timeout=60)
    while True:  # sampled with one small query; the whole run view is read once, at the end
        progress = blocking(app.store.run_progress(run.id), timeout=60)
        status, in_flight = progress.status, progress.tasks.get("running", 0)
        rss = sum(_rss_of(p) for p in pids)
        if rss > sampling["peak"]:
            sampling.update(peak=rss, in_flight=max(sampling["in_flight"], in_flight))
        sampling["in_flight"] = max(sampling["in_flight"], in_flight)
        if status in ("done", "failed"):
            break
        time.sleep(0.2)
    view = blocking(app.store.get_run(run.id), timeout=60)
    assert view.run.status == "done", view.run.error
    log = _sim_log(base)
    first_req: dict[str, float] = {}
    for r in log:
        tid = r.get("task_id")
        if tid and (tid not in first_req or r["t_received"] < first_req[tid]):
            first_req[tid] = r["t_received"]
    claim_to_server = [(first_req[t.id] - t.started_at) * 1000 for t in view.tasks if t.id in first_req and t.started_at]
    ready_to_server = [(first_req[t.id] - t.ready_at) * 1000 for t in view.tasks if t.id in first_req and t.ready_at]
    first_ready = min(t.ready_at for t in view.tasks if t.ready_at)
    last_done = max(t.finished_at for t in view.tasks if t.finished_at)
    steps_wall = last_done - first_ready
    return {
        "steps": n, "all_done": all(t.status == "done" for t in view.tasks),
        "run_wall_s": view.run.finished_at - view.run.created_at if view.run.finished_at else None,
        "steps_wall_s": steps_wall, "steps_per_s": n / steps_wall,
        "dispatch_claim_to_server_ms_p50": _pct(claim_to_server, 0.5), "dispatch_claim_to_server_ms_p99": _pct(claim_to_server, 0.99),
        "ready_to_server_ms_p50": _pct(ready_to_server, 0.5), "ready_to_server_ms_p99": _pct(ready_to_server, 0.99),
        "peak_rss_mb": sampling["peak"] / 2**20, "idle_rss_mb": idle / 2**20,
        "kb_per_in_flight": (sampling["peak"] - idle) / 1024 / max(1, sampling["in_flight"]),
        "max_in_flight": sampling["in_flight"],
    }


def _app_pids(app: Any) -> list[int]:
    import ray

    from actors.runtime import wiring

    pids = []
    for h in [*app.gateways, *(h for hs in app.pools.values() for h in hs)]:
        pids.append(ray.get(wiring.ray_actor(h).__ray_call__.remote(lambda self: os.getpid())))
    return pids


async def _ttft(app: Any, base: str, repeats: int = 5) -> dict[str, float]:
    from core.chat_schemas import ChatMessage, ChatRequest
    from integrations.llm import client

    req = ChatRequest(messages=[ChatMessage(role="user", content="say hello")], role="planner", priority="interactive")
    direct, via = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        async for _ in client.stream(app.backend, req, 60):
            direct.append((time.perf_counter() - t) * 1000)
            break
        t = time.perf_counter()
        async for _ in app.gateways[0].stream(req):
            via.append((time.perf_counter() - t) * 1000)
            break
        await asyncio.sleep(1.2)  # let the rest of the stream drain: measure idle
    return {"direct_ms": statistics.median(direct), "via_gateway_ms": statistics.median(via),
            "added_ms": statistics.median(via) - statistics.median(direct)}


def _cold_start(base: str, repeats: int = 3) -> dict[str, Any]:
    """``maos ask`` in a new process, with a new data directory, until its first step runs: claimed by
    the dispatcher, and its first request at the LLM server. Medians of ``repeats`` runs."""
    runs = [_cold_start_once(base) for _ in range(repeats)]
    claimed, at_server = (sorted(r[i] for r in runs) for i in (0, 1))
    return {"to_first_step_s": statistics.median(claimed), "to_first_step_request_s": statistics.median(at_server),
            "runs": [{"to_first_step_s": c, "to_first_step_request_s": a} for c, a in runs]}


def _cold_start_once(base: str) -> tuple[float, float]:
    data = Path(tempfile.mkdtemp()) / "data"
    env = {**os.environ, "MAOS_DATA_DIR": str(data), "MAOS_LLM_PROVIDER": "ollama", "MAOS_LLM_BASE_URL": base,
           "MAOS_LLM_MODEL": "sim-model", "OLLAMA_API_BASE": base, "MAOS_RAY_NUM_CPUS": "2"}
    _sim_log(base)
    t0 = time.time()
    out = subprocess.run([sys.executable, "-m", "serve_app.cli", "ask", "--json", "[fanout 8] write a note"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    from actors.storage.database import database_keys, open_database
    from core.settings import Settings

    conn = open_database(str(data / "maos.duckdb"), database_keys(Settings(data_dir=data)), read_only=True)
    first = conn.execute("SELECT min(started_at) FROM tasks").fetchone()[0]
    conn.close()
    at_server = min(r["t_received"] for r in _sim_log(base) if r.get("task_id"))
    return float(first - t0), at_server - t0


def main() -> None:
    from actors.runtime import wiring
    from core.logging import configure
    from core.settings import Settings, apply_litellm_environment
    from integrations.llm.backend import Backend

    configure("WARNING", "json")
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "100,300,1000").split(",")]
    parts = set(os.environ.get("BENCH_PARTS", "runtime,http,memory,chat,cluster").split(","))
    results: dict[str, Any] = {"machine": {"cores": os.cpu_count()}, "sizes": {}}
    sim, base = _start_sim(ttft_ms=200, token_ms=50, reply_tokens=20)
    # The baseline's litellm (imported in this process) gets an HTTP pool as large as the app's gateways
    # get: with litellm's default, 500 a host, its requests waited for connections at 1,000 in flight.
    apply_litellm_environment(base, connections=2000)
    try:
        if "cluster" in parts:  # first: it starts a Ray of its own (a multi-node test cluster) and stops it
            from benchmarks.cluster_bench import run_cluster

            second, second_base = _start_sim(ttft_ms=200, token_ms=50, reply_tokens=20)
            try:
                results["cluster"] = run_cluster(base, second_base, repeats=int(os.environ.get("BENCH_REPEATS", "3")))
            finally:
                second.terminate()
        if "http" in parts:
            from benchmarks.http_bench import run_http

            print("http…", flush=True)
            http_settings = Settings(data_dir=Path(tempfile.mkdtemp()) / "data", llm_provider="ollama",
                                     llm_base_url=base, llm_model="sim-model", llm_slots=2000,
                                     namespace=f"bench{uuid.uuid4().hex[:6]}", log_level="WARNING", ray_num_cpus=2)
            results["http"] = run_http(http_settings, base)
        if "memory" in parts:
            from benchmarks.memory_bench import plan_context_latency, run_memory

            sizes_m = [int(x) for x in os.environ.get("BENCH_MEMORY_SIZES", "1000,10000,50000").split(",")]
            results["memory"] = run_memory(sizes_m)
            print("memory: plan context…", flush=True)
            results["memory"]["plan_context"] = plan_context_latency(base)
        if "chat" in parts:  # alone: BENCH_PARTS=chat
            from benchmarks.chat_bench import run_chat

            print("chat: conversation context and answer-or-plan…", flush=True)
            results["chat"] = run_chat(base)
        if "runtime" not in parts:
            return _finish(results)
        # The cold start first, on a quiet machine as a person's start is: after the Store part (which
        # leaves its files being written back) the same code measured 1-2 s slower.
        print("cold start…", flush=True)
        results["cold_start"] = _cold_start(base)
        print("store…", flush=True)
        results["store"] = asyncio.run(store_bench())
        settings = Settings(data_dir=Path(tempfile.mkdtemp()) / "data", llm_provider="ollama", llm_base_url=base,
                            llm_model="sim-model", llm_slots=2000, max_in_flight=1000, per_type_in_flight=1000,
                            gateway_replicas=2,  # litellm is CPU-bound here: one gateway per core (DESIGN)
                            namespace=f"bench{uuid.uuid4().hex[:6]}", log_level="WARNING", ray_num_cpus=2)
        backend = Backend(provider="ollama", base_url=base, planner_model="sim-model", worker_model="sim-model")
        wiring.init_ray(settings)
        app = wiring.start_app(settings, backend)
        print("ttft…", flush=True)
        results["ttft"] = asyncio.run(_ttft(app, base))
        print("dispatch at light load…", flush=True)
        light = [_fanout(app, base, 10) for _ in range(3)]
        results["dispatch_light_load"] = {
            "steps": 10, "repeats": 3,
            "claim_to_server_ms_p50": statistics.median(r["dispatch_claim_to_server_ms_p50"] for r in light),
            "claim_to_server_ms_p99": statistics.median(r["dispatch_claim_to_server_ms_p99"] for r in light)}
        repeats = int(os.environ.get("BENCH_REPEATS", "3"))
        for n in sizes:
            print(f"fanout {n}…", flush=True)
            runs = []
            for _ in range(repeats):  # each run next to its own baseline: this VM's speed moves within minutes
                baseline = asyncio.run(_baseline(base, n))
                sys_r = _fanout(app, base, n)
                sys_r.update({f"baseline_{k}": v for k, v in baseline.items()})
                sys_r["ratio_vs_baseline"] = sys_r["steps_wall_s"] / baseline["wall_s"]
                runs.append(sys_r)
            results["sizes"][n] = {**_medians(runs), "runs": runs}
        wiring.kill_app(app)
        wiring.shutdown_ray()
    finally:
        sim.terminate()
    _finish(results)


def _finish(results: dict[str, Any]) -> None:
    if results["sizes"]:
        _print(results)
    if "http" in results:
        from benchmarks.http_bench import print_http

        print_http(results["http"])
    if "memory" in results:
        from benchmarks.memory_bench import print_memory

        print_memory(results["memory"])
    if "chat" in results:
        from benchmarks.chat_bench import print_chat

        print_chat(results["chat"])
    if "cluster" in results:
        from benchmarks.cluster_bench import print_cluster

        print_cluster(results["cluster"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"runtime-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out}")


_LARGEST = frozenset({"kb_per_in_flight", "peak_rss_mb", "baseline_kb_per_in_flight"})  # memory: a later run reuses what the first grew


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the runs; for memory the largest (the first run's growth: the ones after
    it find the processes already grown and add little); ``all_done``: every run finished everything."""
    out: dict[str, Any] = {"repeats": len(runs), "all_done": all(r["all_done"] for r in runs)}
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [r[key] for r in runs if r[key] is not None]
            out[key] = max(values) if key in _LARGEST else statistics.median(values)
    return out


def _print(r: dict[str, Any]) -> None:
    repeats = {s.get("repeats", 1) for s in r["sizes"].values()}
    print(f"\nmedians of {'/'.join(map(str, sorted(repeats)))} runs, each next to its own baseline run "
          "(memory: the largest, the first run's growth)")
    print("fanout | steps/s | steps wall s | baseline s | ratio | claim→server p50/p99 ms | ready→server p50/p99 ms | "
          "baseline start→server p50/p99 ms | KB/in-flight (baseline) | peak MB")
    for n, s in r["sizes"].items():
        print(f"{n:>6} | {s['steps_per_s']:7.1f} | {s['steps_wall_s']:12.2f} | {s['baseline_wall_s']:10.2f} | {s['ratio_vs_baseline']:5.2f} | "
              f"{s['dispatch_claim_to_server_ms_p50']:7.1f} / {s['dispatch_claim_to_server_ms_p99']:7.1f} | "
              f"{s['ready_to_server_ms_p50']:7.1f} / {s['ready_to_server_ms_p99']:7.1f} | "
              f"{s['baseline_start_to_server_ms_p50']:7.1f} / {s['baseline_start_to_server_ms_p99']:7.1f} | "
              f"{s['kb_per_in_flight']:6.1f} ({s['baseline_kb_per_in_flight']:5.1f}) | {s['peak_rss_mb']:7.0f}")
        if len(s.get("runs", [])) > 1:
            ratios = ", ".join(f"{x['ratio_vs_baseline']:.2f}" for x in s["runs"])
            rates = ", ".join(f"{x['steps_per_s']:.1f}" for x in s["runs"])
            print(f"         runs: ratio {ratios}; steps/s {rates}")
    d = r["dispatch_light_load"]
    print(f"dispatch overhead at light load ({d['steps']} steps): claim→server p50 {d['claim_to_server_ms_p50']:.1f} ms, "
          f"p99 {d['claim_to_server_ms_p99']:.1f} ms")
    t = r["ttft"]
    print(f"TTFT: direct {t['direct_ms']:.1f} ms, via gateway {t['via_gateway_ms']:.1f} ms, added {t['added_ms']:.1f} ms")
    s = r["store"]
    print(f"Store: {s['store_transitions_per_s']:.0f} committed transitions/s vs plain auto-commit {s['plain_autocommit_per_s']:.0f}/s ({s['ratio']:.1f}x); "
          f"encrypted file {s['encrypted_store_transitions_per_s']:.0f}/s ({s['encrypted_ratio']:.2f}x of unencrypted)")
    c = r["cold_start"]
    print(f"maos ask cold start, median of {len(c['runs'])}: first step claimed {c['to_first_step_s']:.1f} s, "
          f"its first request at the LLM server {c['to_first_step_request_s']:.1f} s")


if __name__ == "__main__":
    main()
