"""HTTP figures of `make bench`: the Serve app (API and UI) against the simulated LLM server.

- request overhead through Serve: a no-op endpoint, against the same FastAPI app under plain
  uvicorn in this process (the floor), medians of p50 over rounds;
- first SSE event after posting a message, beyond the model's own first token (idle system);
- 100 chats at once: p95 of the first streamed token beyond the model's own;
- idle footprint of the whole app: every process of the Ray session, PSS (shared pages counted once).
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time
from typing import Any

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _latencies(url: str, n: int) -> list[float]:
    out = []
    with httpx.Client(timeout=30) as client:
        for _ in range(20):
            client.get(url)
        for _ in range(n):
            t = time.perf_counter()
            client.get(url).raise_for_status()
            out.append((time.perf_counter() - t) * 1000)
    return out


def _plain_uvicorn() -> str:
    """The floor: a FastAPI no-op endpoint under uvicorn in a thread of this process."""
    import uvicorn
    from fastapi import FastAPI

    api = FastAPI()

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}"


def _bare_serve_app() -> None:
    """Serve's own floor: a bare FastAPI no-op deployment in the same Serve instance, at /_bare."""
    from fastapi import FastAPI
    from ray import serve

    def builder() -> FastAPI:
        api = FastAPI()

        @api.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "ok"}

        return api

    class Bare:
        pass

    deployment = serve.deployment(name="bare", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)(
        serve.ingress(builder)(Bare))
    serve.run(deployment.bind(), name="bare", route_prefix="/_bare")


def overhead(base: str, rounds: int = 5, n: int = 200) -> dict[str, float]:
    floor = _plain_uvicorn()
    _bare_serve_app()
    ours, bare, plain = [], [], []
    p99 = []
    for _ in range(rounds):
        via = _latencies(f"{base}/health", n)
        ours.append(_p(via, 0.5))
        p99.append(_p(via, 0.99))
        bare.append(_p(_latencies(f"{base}/_bare/health", n), 0.5))
        plain.append(_p(_latencies(f"{floor}/health", n), 0.5))
    return {"serve_p50_ms": statistics.median(ours), "serve_p99_ms": statistics.median(p99),
            "bare_serve_p50_ms": statistics.median(bare), "plain_uvicorn_p50_ms": statistics.median(plain),
            "added_over_bare_serve_p50_ms": statistics.median(ours) - statistics.median(bare)}


async def _model_first_token(sim_base: str) -> float:
    """The model's own first token: a streamed request straight to the simulated server."""
    body = {"model": "sim-model", "stream": True, "messages": [{"role": "user", "content": "say hello"}]}
    async with httpx.AsyncClient(timeout=60) as client:
        t = time.perf_counter()
        async with client.stream("POST", f"{sim_base}/api/chat", json=body) as resp:
            async for _ in resp.aiter_lines():
                return (time.perf_counter() - t) * 1000
    raise AssertionError("the simulated server sent nothing")


async def _chat(client: httpx.AsyncClient, message: str) -> dict[str, float]:
    """Post a message and follow its events: ms to the first event, the first token, and the end."""
    t = time.perf_counter()
    accepted = (await client.post("/api/runs", json={"message": message})).json()
    marks: dict[str, float] = {"accepted_ms": (time.perf_counter() - t) * 1000}
    async with client.stream("GET", accepted["events_url"]) as resp:
        async for line in resp.aiter_lines():
            if not line.startswith("event: "):
                continue
            kind = line[7:]
            now = (time.perf_counter() - t) * 1000
            marks.setdefault("first_event_ms", now)
            if kind == "token":
                marks.setdefault("first_token_ms", now)
            if kind == "end":
                marks["end_ms"] = now
                return marks
    raise AssertionError(f"the stream of run {accepted['run_id']} ended without an end event")


async def first_events(base: str, sim_base: str, repeats: int = 7, chats: int = 100) -> dict[str, Any]:
    model = statistics.median([await _model_first_token(sim_base) for _ in range(repeats)])
    async with httpx.AsyncClient(base_url=base, timeout=300,
                                 limits=httpx.Limits(max_connections=chats * 2 + 10)) as client:
        idle = [await _chat(client, "[fanout 1] write a short note") for _ in range(repeats)]
        started = time.perf_counter()
        crowd = await asyncio.gather(*(_chat(client, f"[fanout 1] write note {i}") for i in range(chats)))
        crowd_wall = time.perf_counter() - started
    idle_first = statistics.median(m["first_token_ms"] for m in idle)
    crowd_first = [m["first_token_ms"] for m in crowd]
    return {
        "model_first_token_ms": model,
        "idle_first_event_ms": statistics.median(m["first_event_ms"] for m in idle),
        "idle_first_token_ms": idle_first, "idle_first_token_beyond_model_ms": idle_first - model,
        "chats": chats, "crowd_first_token_p50_ms": _p(crowd_first, 0.5), "crowd_first_token_p95_ms": _p(crowd_first, 0.95),
        "crowd_first_token_p95_beyond_model_ms": _p(crowd_first, 0.95) - model, "crowd_all_done_s": crowd_wall,
        "crowd_accepted_p95_ms": _p([m["accepted_ms"] for m in crowd], 0.95),
        "crowd_first_event_p95_ms": _p([m["first_event_ms"] for m in crowd], 0.95),
    }


def footprint() -> dict[str, float]:
    """Memory of every process of the local Ray session (the driver's descendants) and the driver."""
    import psutil

    me = psutil.Process()
    rss = pss = 0
    procs = [me, *me.children(recursive=True)]
    for p in procs:
        try:
            info = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return {"processes": len(procs), "rss_sum_mb": rss / 2**20, "pss_sum_mb": pss / 2**20}


def run_http(settings: Any, sim_base: str) -> dict[str, Any]:
    """Start the app with its Serve deployment (UI included), measure, stop."""
    from actors.runtime import wiring
    from integrations.llm.backend import Backend
    from serve_app.server import serve_http

    backend = Backend(provider="ollama", base_url=sim_base, planner_model="sim-model", worker_model="sim-model")
    wiring.init_ray(settings)
    app = wiring.start_app(settings, backend)
    port = _free_port()
    serve_http(settings, "127.0.0.1", port, wiring.dashboard_url())
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while httpx.get(f"{base}/ready", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the Serve app never became ready"
        time.sleep(0.2)
    httpx.get(f"{base}/", timeout=30, follow_redirects=True).raise_for_status()  # the UI is built and served
    try:
        time.sleep(5)  # settle: idle footprint after start-up
        out: dict[str, Any] = {"idle_footprint": footprint()}
        out["overhead"] = overhead(base)
        out["streaming"] = asyncio.run(first_events(base, sim_base))
        return out
    finally:
        from ray import serve

        serve.shutdown()
        wiring.kill_app(app)
        wiring.shutdown_ray()


def print_http(r: dict[str, Any]) -> None:
    o, s, f = r["overhead"], r["streaming"], r["idle_footprint"]
    print(f"HTTP no-op via Serve: p50 {o['serve_p50_ms']:.2f} ms, p99 {o['serve_p99_ms']:.2f} ms; a bare Serve "
          f"FastAPI app: p50 {o['bare_serve_p50_ms']:.2f} ms (ours adds {o['added_over_bare_serve_p50_ms']:.2f} ms); "
          f"plain uvicorn p50 {o['plain_uvicorn_p50_ms']:.2f} ms")
    print(f"First SSE event after posting: {s['idle_first_event_ms']:.0f} ms; first token {s['idle_first_token_ms']:.0f} ms "
          f"= model's {s['model_first_token_ms']:.0f} ms + {s['idle_first_token_beyond_model_ms']:.0f} ms")
    print(f"{s['chats']} chats at once: first token p50 {s['crowd_first_token_p50_ms']:.0f} ms, "
          f"p95 {s['crowd_first_token_p95_ms']:.0f} ms (+{s['crowd_first_token_p95_beyond_model_ms']:.0f} ms beyond the model); "
          f"all done in {s['crowd_all_done_s']:.1f} s; p95 accepted {s['crowd_accepted_p95_ms']:.0f} ms, "
          f"first event {s['crowd_first_event_p95_ms']:.0f} ms")
    print(f"Idle footprint: {f['processes']} processes, PSS {f['pss_sum_mb']:.0f} MB (RSS sum {f['rss_sum_mb']:.0f} MB)")
