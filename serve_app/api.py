"""The HTTP app (FastAPI), built inside the Serve replica by :func:`build_api`.

``/api`` is the API, ``/docs`` its OpenAPI page, ``/metrics`` Prometheus, ``/health`` and
``/ready`` the probes, and ``/`` the web UI (a Gradio app talking to this same API). Every
error is JSON with a ``detail`` that names the field or the thing; none is a bare 500.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    ActorGone,
    ApprovalRefused,
    ConfigError,
    Conflict,
    IngestError,
    IntegrationUnavailable,
    LLMUnavailable,
    MaosError,
    NotFound,
    PlanError,
    QueueFull,
    Reauthenticate,
    ToolError,
)
from core.settings import Settings
from core.tls import client_verify
from serve_app.access import RuntimeAccess
from serve_app.account_routes import OPEN_PATHS, build_account_routes
from serve_app.admin_routes import build_admin_routes
from serve_app.auth import Guard, Login, allowed_hosts, ensure_login
from serve_app.callers import PUBLIC
from serve_app.google_routes import approval_status, build_google_routes
from serve_app.lockout import Lockout
from serve_app.login_page import CSRF_SCRIPT, build_login_pages
from serve_app.memory_routes import build_memory_routes
from serve_app.metrics import HttpMetrics, TimingMiddleware
from serve_app.routes import build_work_routes
from serve_app.sessions import Accounts, caller_user
from serve_app.user_limits import UserLimits

_log = structlog.get_logger("maos.api")
_STATUS: list[tuple[type[MaosError], int]] = [
    (NotFound, 404), (Conflict, 409), (QueueFull, 429), (Reauthenticate, 403), (ActorGone, 503), (LLMUnavailable, 503),
    (ConfigError, 422), (PlanError, 422), (IngestError, 422), (ToolError, 422), (IntegrationUnavailable, 409),
]


def _field_errors(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def install_error_handlers(api: FastAPI, rt: RuntimeAccess) -> None:
    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [{"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"detail": _field_errors(exc), "errors": fields}, status_code=422)

    @api.exception_handler(MaosError)
    async def _program(_: Request, exc: MaosError) -> JSONResponse:
        code = approval_status(exc) if isinstance(exc, ApprovalRefused) else next(
            (c for kind, c in _STATUS if isinstance(exc, kind)), 400)
        headers = {}
        if isinstance(exc, QueueFull):
            headers["Retry-After"] = str(max(1, int(exc.retry_after_s)))
        if isinstance(exc, ActorGone):
            rt.forget()
            headers["Retry-After"] = "5"
        return JSONResponse({"detail": str(exc)}, status_code=code, headers=headers)

    @api.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @api.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex[:8]
        _log.error("http.unhandled", error_id=error_id, path=request.url.path, error_type=type(exc).__name__,
                   exc_info=exc)
        return JSONResponse({"detail": f"internal error {error_id} ({type(exc).__name__}); it is in the server log"},
                            status_code=500)


def build_api(settings: Settings, dashboard_url: str | None = None, api_base: str | None = None,
              login_hash: str | None = None, bind_host: str = "127.0.0.1") -> FastAPI:
    """The ASGI app. ``api_base`` is where the web UI reaches this API (the Serve proxy on this
    node); without it there is no UI and ``/`` leads to the API docs. ``login_hash``: the stored
    hash of the login token (``ensure_login``; from the settings when not given). ``bind_host``:
    the address served, for the ``Host`` allow-list."""
    rt = RuntimeAccess(settings, dashboard_url)
    api = FastAPI(title="Master Agent OS", version="0.2.0",
                  description="Chat with the master agent; watch its plan and sub-agents work.")
    install_error_handlers(api, rt)
    metrics = HttpMetrics()
    login = Login(login_hash if login_hash is not None else ensure_login(settings)[0])
    api.state.login = login
    api.state.default_user_id = settings.user_id  # the caller until the door names one (serve_app.callers)
    api.state.user_limits = UserLimits(lambda: rt.live.settings)  # per-user rate limits (serve_app.user_limits)
    ui_key = secrets.token_urlsafe(32)  # the UI's own calls to this API; never leaves this process

    api.add_middleware(TimingMiddleware, metrics=metrics)
    accounts = Accounts(rt.store, settings.user_id)
    api.add_middleware(Guard, login=login, hosts=allowed_hosts(settings, bind_host), ui_key=ui_key,
                       api_per_minute=settings.rate_limit_per_minute,
                       logins_per_minute=settings.login_attempts_per_minute,
                       accounts=accounts, admin_id=settings.user_id, open_paths=OPEN_PATHS)
    api.include_router(build_login_pages())
    api.include_router(build_account_routes(accounts, login, Lockout(per_address=settings.login_attempts_per_minute)))
    api.include_router(build_work_routes(rt))
    api.include_router(build_memory_routes(rt))
    api.include_router(build_admin_routes(rt, metrics))
    api.include_router(build_google_routes(rt, with_ui=api_base is not None))

    if api_base is not None:
        from ui import mount_ui

        mount_ui(api, api_base, dashboard_url, caller_user, ui_key, head=CSRF_SCRIPT,
                 verify=client_verify(settings.tls_cert))  # the UI calls this app: HTTPS when it is served so
    else:
        @api.get("/", include_in_schema=False, dependencies=[PUBLIC])
        async def index() -> RedirectResponse:
            return RedirectResponse("/docs")

    document_errors(api)
    return api


# What every error answer is (see install_error_handlers): FastAPI's default document says a 422's
# ``detail`` is a list of validation errors; this app's is a sentence, with the fields in ``errors``.
ERROR_BODY: dict[str, Any] = {
    "title": "Error", "type": "object", "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "What is wrong, naming the field or the thing."},
        "errors": {"type": "array", "description": "For invalid input: each field and what is wrong with it.",
                   "items": {"type": "object", "required": ["field", "message"],
                             "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
    },
}


def document_errors(api: FastAPI) -> None:
    """The OpenAPI document describes the 422 answer as the app sends it (a client or a fuzzer checks it)."""
    generate = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schemas = generate().setdefault("components", {}).setdefault("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = ERROR_BODY
        return api.openapi_schema or generate()

    api.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document
