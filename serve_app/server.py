"""``maos serve``: the runtime actors plus a Ray Serve HTTP app on 127.0.0.1:8000 (HTTPS with
``MAOS_TLS_CERT`` and ``MAOS_TLS_KEY``: Serve's proxy serves it directly)."""

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
from serve_app.auth import check_bind, ensure_login, is_loopback
from serve_app.boot import attach_or_start
from serve_app.sessions import first_setup_link
from ui import UI_ENV

_log = structlog.get_logger("maos.serve")
HEAD_RESOURCE = "node:__internal_head__"  # Ray gives the head node this resource, and no other


def serve_http(settings: Settings, host: str, port: int, dashboard_url: str | None = None,
               login_hash: str | None = None) -> None:
    """Deploy the API as a Serve app (the ASGI app is built on the replica: it cannot be pickled).
    The deployment carries no secret: only the login token's salted hash (``ensure_login``)."""
    warn_if_clear_text(settings, host)  # here, for `maos serve` and `maos cluster head` both
    login_hash = login_hash if login_hash is not None else ensure_login(settings)[0]
    shareable = settings.without_secrets()
    # No per-request access log lines: they cost CPU on every request; /metrics has the timings.
    ray_serve.start(http_options={"host": host, "port": port, **tls_options(settings)},
                    logging_config={"enable_access_log": False})

    loopback = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    api_base = f"{settings.url_scheme}://{loopback}:{port}"  # the UI trusts the served certificate (build_api)

    def builder() -> Any:
        return build_api(shareable, dashboard_url, api_base, login_hash=login_hash, bind_host=host)

    ingress = ray_serve.ingress(builder)

    class Api:
        pass

    # Every open SSE stream (run events, the UI's queue) holds one of these: keep it high. On the head
    # node (Ray's own resource there): its proxy is the address people use, the only one that needs the
    # TLS files, and the UI's calls to 127.0.0.1 reach it.
    deployment = ray_serve.deployment(name="api", ray_actor_options={
        "num_cpus": 0, "resources": {HEAD_RESOURCE: 0.001}, "runtime_env": {"env_vars": UI_ENV}},
        max_ongoing_requests=1000)(
        ingress(Api)
    )
    ray_serve.run(deployment.bind(), name="maos", route_prefix="/")


def tls_options(settings: Settings) -> dict[str, str]:
    """Serve's HTTP options for HTTPS (its proxy's uvicorn opens the files), or none for plain HTTP."""
    if settings.tls_cert is None or settings.tls_key is None:
        return {}
    return {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}


def clear_text_warning(settings: Settings, host: str) -> str | None:
    """What to say at start when the app is reachable beyond this machine over plain HTTP (None: it is
    not: loopback, or HTTPS). It still starts: a LAN the team trusts, or a TLS proxy in front, may be fine."""
    if settings.tls_cert is not None or is_loopback(host.strip("[]")):
        return None
    return (f"WARNING: serving plain HTTP on {host or 'every address'}: passwords, login tokens and session cookies "
            "travel in clear text on the network, and cookies are not marked Secure. Serve HTTPS: "
            "`maos tls self-signed --host <this machine's LAN name or IP>`, then set MAOS_TLS_CERT and MAOS_TLS_KEY "
            "to the files it prints (or put a TLS reverse proxy in front and bind to 127.0.0.1).")


def warn_if_clear_text(settings: Settings, host: str) -> None:
    warning = clear_text_warning(settings, host)
    if warning is not None:
        _log.warning("tls.off", bind_host=host, secure_cookies=False)
        print(warning, flush=True)


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
        url = f"{booted.settings.url_scheme}://{host}:{port}"
        print(f"Master Agent OS is running: {url}/", flush=True)
        if new_token is not None:
            print(f"  Login token (shown once; only its hash is kept): {new_token}", flush=True)
        elif booted.settings.api_token is None:
            print("  Login with the token printed at the first start (lost it? `maos token --new`)", flush=True)
        setup = blocking(first_setup_link(booted.app.store, booted.settings.user_id), timeout=60)
        if setup is not None:
            print(f"  Admin setup (one-time link, 72 h; a new one at each start until used): "
                  f"{url}{setup}", flush=True)
        print(f"  API        {url}/api  (docs: {url}/docs)", flush=True)
        print(f"  Metrics    {url}/metrics", flush=True)
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
