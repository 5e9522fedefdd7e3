"""A fake Google for tests: OAuth 2.0, Gmail v1, Calendar v3 and Drive v3 on 127.0.0.1.

The routes come from the discovery documents google-api-python-client ships, so the real client
reaches it unchanged::

    fake = FakeGoogle().start()
    svc = build("gmail", "v1", credentials=creds, client_options={"api_endpoint": fake.url},
                static_discovery=True, cache_discovery=False)

A discovery method without a handler answers 501, an unknown path 404; each method's scopes are
checked against the bearer token's. State is in memory behind one lock: tests seed it
(``add_message``...), observe it (``side_effects``, ``sent_messages``...) and inject faults
(``fail_next``, ``hold``, ``revoke_all``...). Media uploads from a client built with an ``http``
``api_endpoint`` arrive over TLS (see ``_fake_tls``); trust ``ca_file`` for those, e.g.
``monkeypatch.setattr(httplib2, "CA_CERTS", fake.ca_file)``.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from maos_testing.google import _fake_mime
from maos_testing.google._fake_calendar import CalendarState
from maos_testing.google._fake_discovery import google_router
from maos_testing.google._fake_drive import DriveState
from maos_testing.google._fake_gmail import GmailState
from maos_testing.google._fake_oauth import OAuthState
from maos_testing.google._fake_tls import make_tls
from maos_testing.google._fake_wire import (
    ApiError,
    ApiRequest,
    Json,
    Reply,
    default_reason,
    rfc3339,
    unb64url,
)

__all__ = ["FakeGoogle"]

_FAULT_REASONS = {429: "rateLimitExceeded", 403: "userRateLimitExceeded"}
_UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                    "cookie or other valid authentication credential.")


@dataclass(frozen=True)
class _Hold:
    seconds: float
    after_effect: bool


class FakeGoogle:
    """One fake Google account (``account_email``) and one OAuth client (``client_id``)."""

    client_id = "fake-client-id"
    client_secret = "fake-client-secret"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token_ttl_s: float = 3600.0,
                 account_email: str = "owner@example.test") -> None:
        self.account_email = account_email
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._router = google_router()
        self._oauth = OAuthState({self.client_id: self.client_secret}, account_email, token_ttl_s)
        self._gmail = GmailState(account_email)
        self._calendar = CalendarState(account_email)
        self._drive = DriveState()
        self._handlers: dict[str, Callable[[ApiRequest], Reply]] = {
            **self._gmail.handlers(), **self._calendar.handlers(), **self._drive.handlers()}
        self._faults: dict[str, deque[Reply]] = {}
        self._holds: dict[str, deque[_Hold]] = {}
        self.side_effects: list[Json] = []
        self.token_requests: list[Json] = self._oauth.token_requests
        self.internal_errors: list[str] = []  # tracebacks of handler bugs, answered as 500
        folder = Path(tempfile.mkdtemp(prefix="fake-google-"))
        weakref.finalize(self, shutil.rmtree, folder, True)
        tls, ca_file = make_tls(folder, host)
        self.ca_file = str(ca_file)
        self._server = _Server((host, port), self, tls)
        self.url = f"http://{host}:{self._server.server_address[1]}/"
        self.auth_uri = self.url + "o/oauth2/auth"
        self.token_uri = self.url + "token"
        self.revoke_uri = self.url + "revoke"
        self._thread: threading.Thread | None = None

    def start(self) -> FakeGoogle:
        """Serve in a thread; a second call is a no-op (two loops on one socket: ``shutdown`` stops
        one, and the other spins on the closed socket)."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-google", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes held requests
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        self._server.close_connections()

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # seeding

    def add_message(self, *, sender: str, to: str | list[str], subject: str, body: str,
                    thread_id: str | None = None, labels: tuple[str, ...] = ("INBOX", "UNREAD"),
                    date: float | None = None, html: bool = False, headers: dict[str, str] | None = None) -> Json:
        """A message in the mailbox; ``labels`` are ids or names (unknown names become user labels)."""
        when = time.time() if date is None else date
        raw = _fake_mime.build_message(sender=sender, to=[to] if isinstance(to, str) else to, subject=subject,
                                       body=body, date=when, html=html, headers=headers or {})
        with self._lock:
            stored = self._gmail.add(raw, labels, when, thread_id)
            return {"id": stored.id, "threadId": stored.thread_id}

    def add_event(self, *, summary: str, start: float, end: float, attendees: Sequence[str] = (),
                  calendar_id: str = "primary", event_id: str | None = None, description: str = "") -> Json:
        body: Json = {"summary": summary, "description": description, "start": {"dateTime": rfc3339(start)},
                      "end": {"dateTime": rfc3339(end)}, "attendees": [{"email": a} for a in attendees]}
        if event_id is not None:
            body["id"] = event_id
        with self._lock:
            try:
                return self._calendar.insert(calendar_id, body)
            except ApiError as exc:
                raise ValueError(f"add_event: {exc.message}") from None

    def add_busy(self, email: str, start: float, end: float) -> None:
        """A busy span in ``email``'s calendar, for ``freebusy.query``."""
        with self._lock:
            self._calendar.busy.setdefault(email.lower(), []).append((start, end))

    def add_file(self, *, name: str, mime_type: str, content: str | bytes, app_properties: dict[str, str] | None = None,
                 parents: list[str] | None = None) -> Json:
        """A Drive file; for a Google Doc (``application/vnd.google-apps.document``) ``content`` is its text."""
        data = content.encode() if isinstance(content, str) else content
        meta: Json = {"name": name, "mimeType": mime_type, "appProperties": app_properties or {},
                      "parents": parents}
        with self._lock:
            return self._drive.create(meta, data, None)

    # observation

    def effects(self, method_id: str) -> list[Json]:
        with self._lock:
            return [effect for effect in self.side_effects if effect["method"] == method_id]

    def sent_messages(self) -> list[Json]:
        with self._lock:
            return self._gmail.sent()

    def events(self, calendar_id: str = "primary") -> list[Json]:
        with self._lock:
            return self._calendar.current(calendar_id)

    # fault injection

    def fail_next(self, method_id: str, status: int = 429, count: int = 1, retry_after: float | None = None,
                  reason: str | None = None) -> None:
        """The next ``count`` calls of ``method_id`` fail with ``status`` (Google's reason for it)."""
        self._known(method_id)
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        reply = ApiError(status, None, reason or _FAULT_REASONS.get(status) or default_reason(status)).reply(headers)
        with self._lock:
            self._faults.setdefault(method_id, deque()).extend([reply] * count)

    def hold(self, method_id: str, seconds: float, after_effect: bool = True) -> None:
        """The next call of ``method_id`` answers ``seconds`` late: after its effect, or before it."""
        self._known(method_id)
        with self._lock:
            self._holds.setdefault(method_id, deque()).append(_Hold(seconds, after_effect))

    def revoke_all(self) -> None:
        with self._lock:
            self._oauth.revoke_all()

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._oauth.expire_access_tokens()

    def _known(self, method_id: str) -> None:
        if method_id not in self._router.method_ids:
            near = sorted(m for m in self._router.method_ids if m.split(".")[-1] == method_id.split(".")[-1])
            raise ValueError(f"unknown Google method {method_id!r}; similar: {', '.join(near[:8]) or 'none'}")

    # serving

    def _answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """The reply to one HTTP request (``headers`` with lower-case names)."""
        parts = urlsplit(target)
        path, query = parts.path.lstrip("/"), parse_qs(parts.query, keep_blank_values=True)
        auth = headers.get("authorization", "")
        with self._lock:
            oauth = self._oauth_reply(method, path, query, auth, body)
            scopes = self._oauth.scopes_for(auth)
        if oauth is not None:
            return oauth
        found = self._router.match(method, path)
        if found is None:
            return ApiError(404, f"Not Found: {method} /{path}", "notFound").reply()
        route, params = found
        if scopes is None:
            return ApiError(401, _UNAUTHENTICATED, "authError").reply(
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'})
        if route.scopes and not route.scopes & scopes:
            return ApiError(403, "Request had insufficient authentication scopes.", "insufficientPermissions").reply(
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="insufficient_scope"'})
        handler = self._handlers.get(route.method_id)
        if handler is None:
            return ApiError(501, f"{route.method_id} is not implemented by the fake Google server",
                            "notImplemented").reply()
        with self._lock:
            fault = self._faults[route.method_id].popleft() if self._faults.get(route.method_id) else None
            held = self._holds[route.method_id].popleft() if self._holds.get(route.method_id) else None
        if fault is not None:
            return fault
        if held is not None and not held.after_effect:
            self._stopping.wait(held.seconds)
        reply = self._run(handler, ApiRequest(route.method_id, method, params, query, headers, body, route.upload))
        if held is not None and held.after_effect:
            self._stopping.wait(held.seconds)
        return reply

    def _oauth_reply(self, method: str, path: str, query: dict[str, list[str]], auth: str,
                     body: bytes) -> Reply | None:
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True) if method == "POST" else {}
        if method == "GET" and path in ("o/oauth2/auth", "o/oauth2/v2/auth"):
            return self._oauth.authorize(query)
        if method == "POST" and path in ("token", "oauth2/v4/token"):
            return self._oauth.token(form, auth)
        if method == "POST" and path in ("revoke", "o/oauth2/revoke"):
            token = (query.get("token") or form.get("token") or [""])[0]
            return self._oauth.revoke(token)
        if method == "GET" and path in ("oauth2/v2/userinfo", "oauth2/v3/userinfo", "v1/userinfo"):
            if self._oauth.scopes_for(auth) is None:
                return ApiError(401, _UNAUTHENTICATED, "authError").reply()
            return Reply(json=self._oauth.userinfo())
        return None

    def _run(self, handler: Callable[[ApiRequest], Reply], req: ApiRequest) -> Reply:
        with self._lock:
            try:
                reply = handler(req)
            except ApiError as exc:
                return exc.reply()
            except Exception:  # a bug in the fake: answer like Google's backend would, keep the trace
                self.internal_errors.append(traceback.format_exc())
                return ApiError(500, "Backend Error (fake server bug; see FakeGoogle.internal_errors)").reply()
            if req.http_method != "GET" and reply.status < 300:
                self.side_effects.append({
                    "method": req.method_id, "path_params": dict(req.path_params),
                    "query": {k: v[0] if len(v) == 1 else list(v) for k, v in req.query.items()},
                    "body": _effect_body(req), "at": time.time(), "status": reply.status, "response": reply.json})
            return reply


def _effect_body(req: ApiRequest) -> Json:
    """The request body for ``side_effects``: JSON as sent; mail and uploads also decoded."""
    try:
        meta, media, _ = req.upload_parts()
    except ApiError:
        return {"raw_decoded": req.body.decode("utf-8", "replace")}
    body = dict(meta)
    raw = body.get("raw") or (body.get("message") or {}).get("raw")
    if media is not None:
        body["raw_decoded"] = media.decode("utf-8", "replace")
    elif isinstance(raw, str):
        body["raw_decoded"] = unb64url(raw).decode("utf-8", "replace")
    return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60

    def do_GET(self) -> None:
        server = cast(_Server, self.server)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = server.fake._answer(self.command, self.path, headers, body)
        payload = b"" if reply.status == 204 else reply.payload()
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.status != 204:
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client went away (a held answer, say)
            self.close_connection = True

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``side_effects``, not access logs."""


class _Server(ThreadingHTTPServer):
    """Plain HTTP and TLS on one port: a connection that opens with a TLS handshake gets wrapped."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: FakeGoogle, tls: ssl.SSLContext) -> None:
        self.fake = fake
        self.tls = tls
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        assert isinstance(request, socket.socket)
        conn = request
        try:
            request.settimeout(_Handler.timeout)
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls
            if request.recv(1, socket.MSG_PEEK) == b"\x16":  # TLS ClientHello
                conn = self.tls.wrap_socket(request, server_side=True)
            with self._connections_lock:
                self._connections.add(conn)
            _Handler(conn, client_address, self)
        except OSError:  # includes failed handshakes and clients that hung up
            pass
        finally:
            with self._connections_lock:
                self._connections.discard(conn)
            if conn is not request:
                conn.close()

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        """Quiet: a dropped connection is part of the tests (``hold``)."""

    def close_connections(self) -> None:
        with self._connections_lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
