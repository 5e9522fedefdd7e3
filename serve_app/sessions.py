"""Who a request is: sessions (a cookie), API tokens (a bearer ``maos_…``), and the audit of logins.

The HTTP replica holds no account state of its own beyond a few seconds' cache of answers: the
Store has the users, the sessions and the tokens, each secret kept as its SHA-256.

- **Session cookie** ``maos_session``: an opaque random id, ``HttpOnly``, ``SameSite=Lax``,
  ``Secure`` when the request came over TLS; it ends after ``SESSION_TTL_S``, or after
  ``SESSION_IDLE_S`` without a request, or at a log out (one, or everywhere).
- **CSRF**: ``maos_csrf`` (readable by the app's own page) holds the token derived from the
  session; a state-changing request authenticated by the cookie must send it back as
  ``X-CSRF-Token`` (the web UI's page adds it to each of its requests).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import structlog

from actors.runtime.apis import StoreApi
from core.account_schemas import SESSION_COOKIE, UserView
from serve_app import audit
from serve_app.callers import SCOPE_KEY, Caller
from serve_app.passwords import csrf_of, new_secret, secret_hash, verify_password_async

_log = structlog.get_logger("maos.accounts")
CSRF_COOKIE = "maos_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_TTL_S = 7 * 24 * 3600.0
SESSION_IDLE_S = 12 * 3600.0
INVITE_TTL_S = 72 * 3600.0
_ADMIN_KEY = "first admin"  # the cache's entry for the first admin's account (not a secret's hash)
_CACHE_S = 5.0  # a disabled user or an ended session stops working within this (at once in this replica)


class Accounts:
    """The Store's account operations as the door and the routes use them."""

    def __init__(self, store: StoreApi, admin_id: str) -> None:
        self.store = store
        self.admin_id = admin_id  # the install's first admin: the login token acts as this account
        self._cache: dict[str, tuple[UserView | None, float]] = {}

    async def session_user(self, session_id: str) -> UserView | None:
        return await self._cached("session", session_id)

    async def token_user(self, token: str) -> UserView | None:
        return await self._cached("api_token", token)

    async def _cached(self, kind: Literal["session", "api_token"], secret: str) -> UserView | None:
        key = secret_hash(secret)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[1] < _CACHE_S:
            return hit[0]
        user = await self.store.authenticate(kind=kind, secret_hash=key, idle_s=SESSION_IDLE_S)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (user, now)
        return user

    async def admin_disabled(self) -> bool:
        """Was the install's first admin (whom the login token acts as) disabled? Then the login
        token is refused too, until ``maos users disable NAME --enable`` on this machine."""
        hit = self._cache.get(_ADMIN_KEY)
        now = time.monotonic()
        if hit is None or now - hit[1] >= _CACHE_S:
            try:
                hit = (next((u for u in await self.store.users() if u.id == self.admin_id), None), now)
            except Exception as exc:  # no Store: no route that needs one works either; the last answer stands
                _log.warning("accounts.unreachable", error_type=type(exc).__name__)
                return hit is not None and hit[0] is not None and hit[0].disabled
            self._cache[_ADMIN_KEY] = hit
        return hit[0] is not None and hit[0].disabled

    async def password_matches(self, name: str, password: str) -> bool:
        """Is ``password`` the enabled account ``name``'s own (a person confirming a change)?"""
        record = await self.store.login_record(name=name)
        return (record is not None and not record.user.disabled
                and await verify_password_async(record.password_hash, password))

    def forget(self, secret: str | None = None) -> None:
        """Drop cached answers (one secret's, or all: after a user was disabled)."""
        if secret is None:
            self._cache.clear()
        else:
            self._cache.pop(secret_hash(secret), None)

    async def start_session(self, user_id: str) -> tuple[str, str]:
        """A new session for ``user_id``: its id (for the cookie) and its CSRF token."""
        session_id = new_secret()
        await self.store.add_credential(kind="session", user_id=user_id, secret_hash=secret_hash(session_id),
                                        name="", expires_at=time.time() + SESSION_TTL_S)
        return session_id, csrf_of(session_id)

    async def invite(self, user_id: str, kind: Literal["setup", "invite"]) -> tuple[str, float]:
        """A one-time link (path with its token) for ``user_id`` to set their password; its expiry.
        A newer link replaces the earlier ones."""
        token = new_secret()
        expires_at = time.time() + INVITE_TTL_S
        await self.store.add_credential(kind="invite", user_id=user_id, secret_hash=secret_hash(token), name=kind,
                                        expires_at=expires_at)
        return f"/setup#{token}", expires_at

    async def ensure_admin(self, name: str = "admin") -> UserView | None:
        """The first admin's account (id ``admin_id``, the owner of what was made before accounts),
        made now if there is none; returns it when it was made now or still has no password (it needs
        its setup link), else None."""
        users = await self.store.users()
        mine = next((u for u in users if u.id == self.admin_id), None)
        if mine is None:
            taken = {u.name.lower() for u in users}
            chosen = name if name.lower() not in taken else f"{name}-{uuid.uuid4().hex[:4]}"
            mine = await self.store.create_user(user_id=self.admin_id, name=chosen, role="admin", password_hash=None)
        return None if mine.has_password else mine

    async def audit(self, action: str, user_id: str | None, actor: str, subject_id: str | None = None,
                    **detail: Any) -> None:
        """An audit row (``login.failed``, ``user.invited``, ``token.revoked``…): ids and counts, never
        passwords, tokens or addresses."""
        await audit.record(self.store, action, user_id, actor, subject_id, **detail)


async def first_setup_link(store: StoreApi, admin_id: str) -> str | None:
    """At a start: the first admin's account (made if missing) and, while it has no password yet, a
    fresh one-time setup link (path and token) to print; None once it is set up."""
    accounts = Accounts(store, admin_id)
    admin = await accounts.ensure_admin()
    if admin is None:
        return None
    link, _ = await accounts.invite(admin.id, "setup")
    await accounts.audit("user.setup_link", admin.id, "system", subject_id=admin.id)
    return link


def cookie_headers(session_id: str, csrf: str, secure: bool, max_age: float = SESSION_TTL_S) -> list[tuple[str, str]]:
    """``Set-Cookie`` headers for a new session (or, with empty values and ``max_age`` 0, its end)."""
    flags = f"Path=/; Max-Age={int(max_age)}; SameSite=Lax" + ("; Secure" if secure else "")
    return [("set-cookie", f"{SESSION_COOKIE}={session_id}; HttpOnly; {flags}"),
            ("set-cookie", f"{CSRF_COOKIE}={csrf}; {flags}")]


def caller_user(request: Any) -> str | None:
    """The web UI's user (Gradio's ``auth_dependency``): the caller the door identified, if any."""
    found = request.scope.get(SCOPE_KEY)
    return found.user_id if isinstance(found, Caller) else None
