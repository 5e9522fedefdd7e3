"""Operations routes: probes, status, agents, settings, metrics.

The LLM server's URL is shown redacted everywhere here (no credentials, no query). The probes are open;
settings changes, the connection test and the metrics are an admin's; the rest any signed-in person's.
A settings change is audited (``settings.changed``: who, and the names of the fields changed).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from actors.agents import all_specs
from actors.runtime import cluster_info, wiring
from core.schemas import (
    AgentPoolView,
    AgentsView,
    ConnectionResult,
    ConnectionTest,
    EditableSettings,
    SettingsView,
    SystemStatus,
    ToolSupport,
)
from integrations.llm.backend import redact_url
from integrations.llm.endpoints import llm_endpoints, redact_endpoints, wait_reason
from serve_app import audit
from serve_app.access import RuntimeAccess
from serve_app.auth import require_reauth
from serve_app.callers import PUBLIC, Admin, Member
from serve_app.live_settings import test_connection
from serve_app.metrics import HttpMetrics


def build_admin_routes(rt: RuntimeAccess, metrics: HttpMetrics) -> APIRouter:
    r = APIRouter()

    @r.get("/api", tags=["probes"])
    async def index(request: Request, who: Member) -> dict[str, object]:
        """Where things are: the docs, and every API path."""
        paths = sorted(p for p in request.app.openapi()["paths"] if p.startswith("/api/"))
        return {"docs": "/docs", "openapi": "/openapi.json", "metrics": "/metrics", "paths": paths}

    @r.get("/health", tags=["probes"], dependencies=[PUBLIC])
    async def health() -> dict[str, str]:
        """Liveness: the HTTP app answers."""
        return {"status": "ok"}

    @r.get("/ready", tags=["probes"], dependencies=[PUBLIC])
    async def ready() -> JSONResponse:
        """Readiness: the Store and the gateway answer, and the LLM server is reachable; else the reasons."""
        reasons = []
        try:
            await rt.store.ping()
        except Exception as exc:
            rt.forget()
            reasons.append(f"store: {exc}")
        try:
            h = await rt.llm()
            if not h["reachable"]:
                reasons.append(f"llm: {h['provider']} at {redact_url(h['base_url'])} is not answering")
        except Exception as exc:
            reasons.append(f"gateway: {exc}")
        return JSONResponse({"ready": not reasons, "reasons": reasons}, status_code=200 if not reasons else 503)

    @r.get("/api/status", response_model=SystemStatus, tags=["agents"])
    async def status(who: Member) -> SystemStatus:
        app = await rt.app()
        h = await rt.llm()
        others = [await g.health() for g in app.gateways[1:]]  # each gateway holds a share of every endpoint
        endpoints, waiting = llm_endpoints([h, *others])
        return SystemStatus(
            ray_nodes=wiring.cluster_nodes(), llm_provider=h["provider"],
            llm_base_url=redact_url(h["base_url"]), llm_models=h["models"], llm_reachable=h["reachable"],
            llm_in_flight=sum(e.in_flight for e in endpoints), llm_waiting=waiting,
            llm_tools=ToolSupport.model_validate(h["tools"]) if h.get("tools") is not None else None,
            llm_slots=sum(e.slots for e in endpoints), llm_endpoints=endpoints,
            llm_wait_reason=wait_reason(endpoints, waiting),
            pools=await app.dispatcher.status(), queue=await app.store.queue_counts(),
        )

    async def pools() -> list[AgentPoolView]:
        app = await rt.app()
        in_flight = await app.dispatcher.in_flight_by_agent()
        return await app.store.agent_stats(
            descriptions={s.name: s.description for s in all_specs()},
            actors={agent: [wiring.ray_handle(h).name for h in hs] for agent, hs in app.pools.items()},
            in_flight=in_flight)

    @r.get("/api/agents", response_model=AgentsView, tags=["agents"])
    async def agents(who: Member) -> AgentsView:
        """Pools with their actors, sub-agents in flight, queue depth and throughput per type, the machines with
        the steps running on each, and the caller's dead letters."""
        views = await pools()
        dead = await rt.store.list_tasks(status="dead", run_id=None, limit=200, user_id=who.user_id)
        machines = cluster_info.machines(await rt.store.running_by_node())
        return AgentsView(pools=views, machines=machines, in_flight=sum(p.in_flight for p in views),
                          queued=sum(p.queued for p in views), dead=dead, dashboard_url=rt.dashboard_url)

    @r.get("/api/settings", response_model=SettingsView, tags=["settings"])
    async def get_settings(who: Member) -> SettingsView:
        await rt.app()  # loads what was saved
        return rt.live.view()

    @r.patch("/api/settings", response_model=SettingsView, tags=["settings"])
    async def update_settings(body: EditableSettings, request: Request, who: Admin) -> SettingsView:
        """Change some settings: validated, saved, applied now where possible (else named in restart_required).
        Another LLM server (it would read every prompt and drive the tools) needs the login token again."""
        app = await rt.app()
        now = rt.live.settings
        asked = body.model_dump(exclude_unset=True)
        # the URL as the API shows it (redacted) sent back means unchanged, as the update itself reads it
        moved = [k for k in ("llm_provider", "llm_base_url", "llm_endpoints")
                 if k in asked and asked[k] not in _as_shown(getattr(now, k), now.llm_slots)]
        if moved:
            require_reauth(request, request.app.state.login, "pointing the app at another LLM server")
        view = await rt.live.update(app, body, await rt.backend())
        changed = sorted({*view.applied, *view.restart_required})
        if changed:  # the fields' names, never their values (a URL may hold a password)
            await audit.record(rt.store, "settings.changed", who.user_id, who.user_id, fields=changed,
                               restart_required=view.restart_required)
        return view

    @r.post("/api/settings/test-connection", response_model=ConnectionResult, tags=["settings"])
    async def test_llm(body: ConnectionTest, who: Admin) -> ConnectionResult:
        """Does this LLM server answer, and does it have the model? Only a server on this machine or on a
        host the settings already name is asked (422 for any other, before anything is sent)."""
        await rt.app()  # loads what was saved: the configured hosts
        return await test_connection(body, rt.live.settings)

    @r.get("/metrics", tags=["probes"])
    async def prometheus(who: Admin) -> Response:
        body = metrics.render(await rt.store.queue_counts(), await pools(), await rt.llm())
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return r


def _as_shown(value: object, slots: int) -> tuple[object, ...]:
    """A setting's value and, for a URL (or a list of endpoints), how the API shows it (redacted)."""
    return (value, redact_url(value), redact_endpoints(value, slots)) if isinstance(value, str) else (value,)
