"""The HTTP app's door: a login always, a ``Host`` allow-list, same-origin state changes, CSRF, rate limits.

- **Who.** Every request the door identifies carries ``scope["maos.caller"]`` (a
  :class:`serve_app.callers.Caller`): a session cookie (``maos_session``, :mod:`serve_app.sessions`)
  → its user; a bearer API token (``maos_…``) → its user; the install's login token (bearer only)
  → the first admin (``settings.user_id``); the web UI's own calls (a key of this process) → the
  user whose session they pass along (``X-Maos-Session``), and nobody without one (401).
- **Login token.** One per install: ``MAOS_API_TOKEN`` when set, else one generated at the first
  start, printed once and kept only as a salted scrypt hash (``<data_dir>/login.sha256``). It stays
  the admin's bearer token. Only the probes (``/health``, ``/ready``), the login routes and pages
  (limited by :class:`serve_app.lockout.Lockout`) and Google's OAuth redirect (guarded by its
  single-use ``state``) are open. An unidentified visit to ``/`` goes to ``/login``.
- **CSRF.** A state-changing request authenticated by the session cookie must carry
  ``X-CSRF-Token`` (derived from the session; the UI's page adds it), else 403. Bearer requests
  need none.
- **Host.** A request naming a host the app does not serve (DNS rebinding) is refused (400).
- **Origin.** A state-changing request (POST, PUT, PATCH, DELETE) that a browser marks as coming
  from another site (``Origin``, ``Sec-Fetch-Site``) is refused (403), whatever it carries.
- **Rate limits.** Per client address: API requests (token bucket, ``rate_limit_per_minute``) and
  failed logins (``login_attempts_per_minute``; past it, every login from that address waits).
  Both answer 429 with ``Retry-After``.
- **Re-authentication.** Routes that widen what the app may do (a policy becoming ``allow``, a new
  LLM server) need the login token or the signed-in person's password again (``X-Maos-Reauth``,
  checked here: :func:`require_reauth`) unless the request itself was authenticated with the login
  token. A wrong one counts as a failed login of the address.
- Every answer carries a Content-Security-Policy that loads images only from the app itself.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import Headers

from core.account_schemas import API_TOKEN_PREFIX, UI_SESSION_HEADER
from core.errors import ActorGone, ConfigError
from core.schemas import REAUTH_HEADER
from core.settings import Settings
from serve_app.callers import Caller
from serve_app.login_token import Login, ensure_login, hash_token, new_login
from serve_app.passwords import csrf_matches
from serve_app.sessions import CSRF_HEADER, SESSION_COOKIE, Accounts

PROTECTED = ("/api", "/metrics", "/docs", "/redoc", "/openapi.json")
# A provider's OAuth redirect (Google's: /api/integrations/google/callback): guarded by the OAuth state,
# single-use, per user, expiring.
OPEN = re.compile(r"/api/integrations/[a-z0-9_-]+/callback")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
       "script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; font-src 'self' data:; "
       "connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'; "
       "object-src 'none'")
__all__ = ["Guard", "Login", "ensure_login", "hash_token", "new_login"]  # and the helpers below
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
AuthKind = Literal["token", "ui", "session", "api_token"]
REAUTHED = "maos.reauthed"  # scope key: the request's X-Maos-Reauth was the caller's password or the login token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str) -> None:
    """Beyond this machine, only with a login token chosen by a person (not one printed once to a
    terminal nobody may be watching)."""
    if not is_loopback(host) and settings.api_token is None:
        raise ConfigError(f"binding to {host} makes the app reachable from the network: set MAOS_API_TOKEN "
                          "(a long random string) to require a login, or bind to 127.0.0.1")


# --- the login token: serve_app.login_token (re-exported here) -----------------------------------


def token_of(headers: Headers) -> str | None:
    """The bearer token of ``Authorization``, if any (a token is never taken from a cookie: a browser
    sends cookies along with forged requests; the session cookie has its CSRF token)."""
    header = headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


# --- hosts and origins -------------------------------------------------------------------------


def allowed_hosts(settings: Settings, bind_host: str) -> frozenset[str]:
    """Host names (no port) this app answers to."""
    names = {"127.0.0.1", "localhost", "::1", bind_host.strip("[]")}
    names |= {h.strip().lower() for h in settings.allowed_hosts.split(",") if h.strip()}
    if settings.public_url is not None and urlsplit(settings.public_url).hostname:
        names.add(str(urlsplit(settings.public_url).hostname).lower())
    if bind_host in ("0.0.0.0", "::", ""):  # every address of this machine
        names |= _machine_names()
    return frozenset(n.lower() for n in names if n)


def _machine_names() -> set[str]:
    names = {socket.gethostname(), socket.getfqdn()}
    try:
        names |= {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        pass
    return names


def host_name(value: str) -> str:
    """``Host`` header → the name alone (``[::1]:8000`` → ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def cross_site(headers: Headers, scheme: str) -> str | None:
    """Why a browser's state-changing request looks cross-site, or None. A request with neither
    header (curl, the CLI, the UI's own client) is not a browser's cross-site request."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site: {fetch_site}"
    origin = headers.get("origin")
    if origin is None:
        return None
    parsed = urlsplit(origin)
    if origin == "null" or parsed.hostname is None:
        return f"Origin: {origin}"
    own = urlsplit(f"{scheme}://{headers.get('host', '')}")
    if (parsed.scheme, parsed.hostname, _port(parsed)) != (own.scheme, own.hostname, _port(own)):
        return f"Origin: {origin}"
    return None


def _port(url: Any) -> int:
    try:
        port = url.port
    except ValueError:
        return -1
    return int(port) if port is not None else (443 if url.scheme == "https" else 80)


# --- rate limits -------------------------------------------------------------------------------


class Buckets:
    """Token buckets per key: ``per_minute`` requests a minute, with bursts up to that many."""

    def __init__(self, per_minute: int, max_keys: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._state: dict[str, tuple[float, float]] = {}
        self._max_keys = max_keys

    def take(self, key: str, now: float | None = None) -> float:
        """0 when a request may go now (and count it), else the seconds until one may."""
        now = time.monotonic() if now is None else now
        tokens, at = self._state.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._remember(key, (tokens - 1.0, now))
            return 0.0
        self._remember(key, (tokens, now))
        return (1.0 - tokens) / self.rate

    def peek(self, key: str, now: float | None = None) -> float:
        """Like :meth:`take` without counting: the wait before the next one, 0 if none."""
        now = time.monotonic() if now is None else now
        tokens, at = self._state.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _remember(self, key: str, value: tuple[float, float]) -> None:
        if key not in self._state and len(self._state) >= self._max_keys:
            self._state.pop(next(iter(self._state)))
        self._state[key] = value


# --- the middleware ----------------------------------------------------------------------------


def _refuse(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class Guard:
    """Pure ASGI middleware in front of everything (API, UI, docs, metrics). It sets
    ``scope["maos.caller"]`` (:class:`serve_app.callers.Caller`) on every request it identifies."""

    def __init__(self, app: Any, login: Login, hosts: Iterable[str], ui_key: str, api_per_minute: int,
                 logins_per_minute: int, accounts: Accounts | None = None, admin_id: str = "local",
                 open_paths: frozenset[str] = frozenset(), login_path: str = "/login") -> None:
        self.app = app
        self.login = login
        self.hosts = frozenset(hosts)
        self._ui_key = ui_key.encode()
        self.api = Buckets(api_per_minute)
        self.failures = Buckets(logins_per_minute)
        self.accounts = accounts
        self.admin_id = admin_id
        self.open_paths = open_paths  # under /api, open to all: the login routes (limited by their lockout)
        self.login_path = login_path  # a form login's failures count against the address too

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send)
        refused = self._check(scope)
        if refused is None:
            refused = await self._identify(scope)
        if refused is not None:
            await refused(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"] == self.login_path:
            send = self._count_failed_login(scope, send)
        await self.app(scope, receive, send)

    def _protected(self, path: str) -> bool:
        return path.startswith(PROTECTED) and not OPEN.fullmatch(path) and path not in self.open_paths

    def _check(self, scope: dict[str, Any]) -> Response | None:
        headers = Headers(scope=scope)
        if host_name(headers.get("host", "")) not in self.hosts:
            return _refuse(400, "unknown host: this app answers only to the names it is configured for "
                                "(MAOS_ALLOWED_HOSTS, MAOS_PUBLIC_URL)")
        if scope["method"] in STATE_CHANGING:
            why = cross_site(headers, str(scope.get("scheme", "http")))
            if why is not None:
                return _refuse(403, f"cross-site request refused ({why}): state changes come only from this app's own pages")
        if self._protected(scope["path"]) or scope["path"] == self.login_path:
            wait = self.failures.peek(client_address(scope))
            if wait > 0:
                return _refuse(429, "too many failed logins from this address; try again later",
                               {"Retry-After": str(max(1, int(wait + 0.999)))})
        return None

    async def _identify(self, scope: dict[str, Any]) -> Response | None:
        """Who the request is (``scope["maos.caller"]``), or why it is refused."""
        request = Request(scope)
        path: str = scope["path"]
        protected = self._protected(path)
        try:
            found = await self._caller(request)
        except ActorGone:
            return _refuse(503, "accounts are not reachable yet; try again shortly", {"Retry-After": "5"})
        if isinstance(found, Response):
            return found
        if found is not None:
            caller, kind = found
            scope["maos.caller"] = caller
            scope.setdefault("state", {})["auth"] = kind
        if not protected:
            if found is None and scope["method"] == "GET" and path == "/":
                return RedirectResponse("/login", status_code=302)  # the UI's page needs a login first
            return None
        if found is None:
            if token_of(request.headers) is not None:  # a guessed token (a stale session is not)
                self.failures.take(client_address(scope))
            return _refuse(401, "login required: log in, or send Authorization: Bearer <API token or login token "
                                "(printed at first start, or MAOS_API_TOKEN)>", {"WWW-Authenticate": "Bearer"})
        if path.startswith("/api"):
            wait = self.api.take(client_address(scope))
            if wait > 0:
                return _refuse(429, "too many requests; slow down", {"Retry-After": str(max(1, int(wait + 0.999)))})
        return None

    async def _caller(self, request: Request) -> tuple[Caller, AuthKind] | Response | None:
        headers = request.headers
        bearer = token_of(headers)
        if bearer is not None:
            kind: AuthKind = "ui"
            if secrets.compare_digest(bearer.encode(), self._ui_key):  # the web UI, for the person on its page
                session_id = headers.get(UI_SESSION_HEADER)
            elif bearer.startswith(API_TOKEN_PREFIX):
                user = await self.accounts.token_user(bearer) if self.accounts is not None else None
                return (Caller(user_id=user.id, role=user.role, via="token"), "api_token") if user else None
            elif self.login.verify(bearer):
                if self.accounts is not None and await self.accounts.admin_disabled():
                    return None
                return Caller(user_id=self.admin_id, role="admin", via="login_token"), "token"
            else:
                return None
        else:
            session_id, kind = request.cookies.get(SESSION_COOKIE), "session"
        user = await self.accounts.session_user(session_id) if session_id and self.accounts is not None else None
        if user is None or session_id is None:
            return None
        if kind == "session" and request.method in STATE_CHANGING and not csrf_matches(session_id, headers.get(CSRF_HEADER)):
            return _refuse(403, "CSRF token missing or wrong: a change made with the session cookie must "
                                "send X-CSRF-Token (the app's own pages do)")
        typed = headers.get(REAUTH_HEADER)
        if typed and self.accounts is not None:
            request.scope[REAUTHED] = await self.accounts.password_matches(user.name, typed) or self.login.verify(typed)
            if not request.scope[REAUTHED]:
                self.failures.take(client_address(request.scope))
        return Caller(user_id=user.id, role=user.role, via="session"), kind

    def _count_failed_login(self, scope: dict[str, Any], send: Any) -> Any:
        client = client_address(scope)

        async def watching(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                self.failures.take(client)
            await send(message)

        return watching

def client_address(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _with_security_headers(send: Any) -> Any:
    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            have = {k.lower() for k, _ in message.get("headers", [])}
            message["headers"] = [*message.get("headers", []),
                                  *((k, v) for k, v in SECURITY_HEADERS if k not in have)]
        await send(message)

    return sending


def auth_kind(request: Request) -> AuthKind | None:
    return request.scope.get("state", {}).get("auth")


def require_reauth(request: Request, login: Login, what: str) -> None:
    """A change that widens what the app may do needs the login token or the signed-in person's
    password again: the request's own bearer login token, or ``X-Maos-Reauth`` (the UI's password
    prompt; the door checked it for a session, :data:`REAUTHED`; here for an API token's request).
    Raises ``Reauthenticate``."""
    from core.errors import Reauthenticate

    checked = request.scope.get(REAUTHED)
    if auth_kind(request) == "token" or checked is True:
        return
    if checked is None and login.verify(request.headers.get(REAUTH_HEADER)):  # not checked at the door
        return
    raise Reauthenticate(f"{what} needs your password (or the login token) again: enter it to confirm")
