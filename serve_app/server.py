"""``maos serve``: the runtime actors plus a Ray Serve HTTP app on 127.0.0.1:8000."""

from __future__ import annotations

import signal
import threading
from typing import Any

import structlog
from ray import serve as ray_serve

from actors.runtime import wiring
from actors.runtime.typed import blocking
from core.settings import Settings
from serve_app.api import build_api
from serve_app.auth import check_bind, ensure_login
from serve_app.boot import attach_or_start
from serve_app.sessions import first_setup_link
from ui import UI_ENV

_log = structlog.get_logger("maos.serve")


def serve_http(settings: Settings, host: str, port: int, dashboard_url: str | None = None,
               login_hash: str | None = None) -> None:
    """Deploy the API as a Serve app (the ASGI app is built on the replica: it cannot be pickled).
    The deployment carries no secret: only the login token's salted hash (``ensure_login``)."""
    login_hash = login_hash if login_hash is not None else ensure_login(settings)[0]
    shareable = settings.without_secrets()
    # No per-request access log lines: they cost CPU on every request; /metrics has the timings.
    ray_serve.start(http_options={"host": host, "port": port}, logging_config={"enable_access_log": False})

    loopback = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    api_base = f"http://{loopback}:{port}"

    def builder() -> Any:
        return build_api(shareable, dashboard_url, api_base, login_hash=login_hash, bind_host=host)

    ingress = ray_serve.ingress(builder)

    class Api:
        pass

    # Every open SSE stream (run events, the UI's queue) holds one of these: keep it high.
    deployment = ray_serve.deployment(name="api", ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": UI_ENV}},
                                      max_ongoing_requests=1000)(
        ingress(Api)
    )
    ray_serve.run(deployment.bind(), name="maos", route_prefix="/")


def serve(settings: Settings, host: str | None, port: int | None) -> int:
    host = host if host is not None else settings.host
    port = port if port is not None else settings.port
    check_bind(settings, host)
    booted = attach_or_start(settings)
    if not booted.owned:
        print(f"Master Agent OS is already running for {settings.data_dir}")
        return 1
    try:
        dashboard = wiring.dashboard_url()
        login_hash, new_token = ensure_login(booted.settings)
        serve_http(booted.settings, host, port, dashboard, login_hash)
        b = booted.app.backend
        print(f"Master Agent OS is running: http://{host}:{port}/", flush=True)
        if new_token is not None:
            print(f"  Login token (shown once; only its hash is kept): {new_token}", flush=True)
        elif booted.settings.api_token is None:
            print("  Login with the token printed at the first start (lost it? `maos token --new`)", flush=True)
        setup = blocking(first_setup_link(booted.app.store, booted.settings.user_id), timeout=60)
        if setup is not None:
            print(f"  Admin setup (one-time link, 72 h; a new one at each start until used): "
                  f"http://{host}:{port}{setup}", flush=True)
        print(f"  API        http://{host}:{port}/api  (docs: http://{host}:{port}/docs)", flush=True)
        print(f"  Metrics    http://{host}:{port}/metrics", flush=True)
        print(f"  Ray dashboard  {dashboard or '(not running in this cluster)'}", flush=True)
        print(f"  LLM  {b.provider} · {b.planner_model} at {b.base_url}", flush=True)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
    finally:
        try:
            ray_serve.shutdown()
        finally:
            booted.close()
    return 0
