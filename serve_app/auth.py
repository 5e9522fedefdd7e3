"""Login for the HTTP app. Bound to loopback, none is needed; bound to anything else, the app
refuses to start without ``MAOS_API_TOKEN``. With a token set, the API, its docs and the metrics
need ``Authorization: Bearer <token>`` (or the ``maos_token`` cookie); the probes stay open; the
web UI asks for the token on its own login page."""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from core.errors import ConfigError
from core.settings import Settings

PROTECTED = ("/api", "/metrics", "/docs", "/redoc", "/openapi.json")
COOKIE = "maos_token"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str) -> None:
    """Refuse to serve beyond this machine without a login."""
    if not is_loopback(host) and settings.api_token is None:
        raise ConfigError(f"binding to {host} makes the app reachable from the network: set MAOS_API_TOKEN "
                          "(a long random string) to require a login, or bind to 127.0.0.1")


def token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE)


def require_token(api: FastAPI, token: str) -> None:
    """Requests to the API, its docs and the metrics must carry ``token``."""
    expected = token.encode()

    @api.middleware("http")
    async def _login(request: Request, call_next: Any) -> Response:
        if not request.url.path.startswith(PROTECTED):
            return await call_next(request)  # type: ignore[no-any-return]
        given = token_of(request)
        if given is None or not secrets.compare_digest(given.encode(), expected):
            return JSONResponse({"detail": "login required: send Authorization: Bearer <MAOS_API_TOKEN>"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)  # type: ignore[no-any-return]
