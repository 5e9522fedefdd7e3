"""Login for the HTTP app. Bound to loopback, none is needed; bound to anything else, the app
refuses to start without ``MAOS_API_TOKEN``. With a token set, the API, its docs and the metrics
need ``Authorization: Bearer <token>`` (or the ``maos_token`` cookie); the probes stay open; the
web UI asks for the token on its own login page."""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers

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


def token_of(headers: Headers, cookies: dict[str, str]) -> str | None:
    header = headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return cookies.get(COOKIE)


class TokenMiddleware:
    """Pure ASGI: requests to the API, its docs and the metrics must carry the token."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._expected = token.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PROTECTED):
            request = Request(scope)
            given = token_of(request.headers, request.cookies)
            if given is None or not secrets.compare_digest(given.encode(), self._expected):
                refused = JSONResponse({"detail": "login required: send Authorization: Bearer <MAOS_API_TOKEN>"},
                                       status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def require_token(api: FastAPI, token: str) -> None:
    api.add_middleware(TokenMiddleware, token=token)
