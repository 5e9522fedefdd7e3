"""Roles (issue 23): every route of the app declares who may use it — open (``PUBLIC``), any signed-in
person (``Member``) or an admin (``Admin``) — and a member is refused what is an admin's. A new route
that declares nothing fails here. No Ray: the checks run before a route reaches the runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from core.settings import Settings
from serve_app.api import build_api
from serve_app.callers import Caller, declared_role
from tests._callers import AsCaller

TOKEN = "s3cret-token-value"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
# Reached without a role on purpose, each for its reason:
FASTAPI_OWN = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}  # behind the door's login; no records
PUBLIC_MOUNTS = {""}  # the web UI at "/" (its own login page; it reaches the API over HTTP as the person)
ADMIN_ONLY = {("PATCH", "/api/settings"), ("POST", "/api/settings/test-connection"), ("GET", "/metrics"),
              ("PUT", "/api/approvals/policy")}
OPEN = {("GET", "/health"), ("GET", "/ready"), ("GET", "/api/integrations/{provider}/callback")}


def _app(tmp_path: Path, ui: bool) -> FastAPI:
    settings = Settings(data_dir=tmp_path, api_token=SecretStr(TOKEN))
    return build_api(settings, api_base="http://127.0.0.1:8000" if ui else None)


def _walk(routes: list[Any]) -> tuple[list[Any], list[Any]]:
    """(API routes, other routes): FastAPI 0.165 keeps an included router as one entry whose
    ``effective_route_contexts()`` are its routes (each with ``methods``, ``path``, ``dependant``)."""
    api_routes: list[Any] = []
    others: list[Any] = []
    for r in routes:
        if isinstance(r, APIRoute):
            api_routes.append(r)
        elif hasattr(r, "effective_route_contexts"):
            for c in r.effective_route_contexts():
                (api_routes if isinstance(c.original_route, APIRoute) else others).append(
                    c if isinstance(c.original_route, APIRoute) else c.original_route)
        else:
            others.append(r)
    return api_routes, others


def _roles(api: FastAPI) -> dict[tuple[str, str], str | None]:
    return {(m, r.path): declared_role(r.dependant) for r in _walk(api.routes)[0] for m in r.methods}


@pytest.fixture(scope="module")
def with_ui(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return _app(tmp_path_factory.mktemp("roles"), ui=True)


def test_every_route_declares_the_role_it_needs(with_ui: FastAPI) -> None:
    undeclared = sorted(f"{m} {p}" for (m, p), role in _roles(with_ui).items() if role is None)
    assert not undeclared, (f"routes that declare no role: {undeclared}; add `who: Member` / `who: Admin` "
                            "or dependencies=[PUBLIC] (serve_app.callers)")
    others = _walk(with_ui.routes)[1]
    unlisted = sorted(r.path for r in others
                      if not (isinstance(r, Mount) and r.path in PUBLIC_MOUNTS)
                      and not (isinstance(r, Route) and r.path in FASTAPI_OWN))
    assert not unlisted, f"mounts or plain routes not listed as public: {unlisted}"
    assert any(isinstance(r, Mount) for r in others)  # the UI is there, and was looked at


def test_the_walk_fails_on_a_route_that_declares_nothing(with_ui: FastAPI) -> None:
    api = FastAPI()

    @api.get("/api/forgotten")
    async def forgotten() -> dict[str, Any]:
        return {}

    assert _roles(api) == {("GET", "/api/forgotten"): None}


def test_admin_pages_are_an_admins_and_the_probes_open(with_ui: FastAPI) -> None:
    roles = _roles(with_ui)
    assert {k: roles[k] for k in ADMIN_ONLY} == dict.fromkeys(ADMIN_ONLY, "admin")
    assert {k: roles[k] for k in OPEN} == dict.fromkeys(OPEN, "public")
    members = {k for k, role in roles.items() if role == "member"}
    assert ("GET", "/api/runs/{run_id}") in members and ("POST", "/api/runs") in members
    # approval delegates are each person's own; the install's policies everyone reads, an admin sets
    assert {("GET", "/api/approvals/delegates"), ("PUT", "/api/approvals/delegates"),
            ("GET", "/api/approvals/policy")} <= members


def test_a_member_is_refused_an_admins_routes_and_not_a_members(tmp_path: Path) -> None:
    member = Caller(user_id="bob", role="member", via="token")
    api = _app(tmp_path, ui=False)
    api.user_middleware.append(Middleware(AsCaller, who=member))  # innermost: after the door
    client = TestClient(api, base_url="http://127.0.0.1:8000", raise_server_exceptions=False)
    refused = client.patch("/api/settings", json={"max_attempts": 3}, headers=BEARER)
    assert refused.status_code == 403 and "admin role" in refused.json()["detail"]
    assert client.put("/api/approvals/policy", json={"policies": {}}, headers=BEARER).status_code == 403
    assert client.get("/metrics", headers=BEARER).status_code == 403
    # a member's route goes past the role check (on to the runtime, which unit tests do not start)
    assert client.get("/api/runs/r1", headers=BEARER).status_code not in (401, 403, 404)
