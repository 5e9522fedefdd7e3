"""Accounts: the ``users``, ``sessions``, ``api_tokens`` and ``invites`` tables (migration 9).

Secrets are never stored: a session id, an API token and an invite token are kept as the SHA-256
of the random value (``secret_hash``), a password as its Argon2id hash (made by the caller). Plain
``(conn, …, now)`` functions; the Store runs writes in its group commit, and :func:`authenticate`
on its engine.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from core.account_schemas import ApiTokenView, CredentialKind, Role, UserLogin, UserView
from core.errors import Conflict, NotFound

if TYPE_CHECKING:
    from actors.storage.engine import Engine

_USER = "id, name, role, disabled, password_hash IS NOT NULL, created_at"


def _user(r: tuple[Any, ...]) -> UserView:
    return UserView(id=r[0], name=r[1] or "", role=r[2] or "member", disabled=bool(r[3]), has_password=bool(r[4]),
                    created_at=r[5])


# --- users -------------------------------------------------------------------------------------


def create_user(conn: duckdb.DuckDBPyConnection, user_id: str, name: str, role: Role, password_hash: str | None,
                now: float) -> UserView:
    """A new account; a name already taken (any case) is a Conflict."""
    if conn.execute("SELECT 1 FROM users WHERE lower(name) = lower(?) OR id = ?", [name, user_id]).fetchone():
        raise Conflict(f"a user named '{name}' already exists")
    conn.execute("INSERT INTO users (id, name, role, disabled, password_hash, created_at) VALUES (?, ?, ?, false, ?, ?)",
                 [user_id, name, role, password_hash, now])
    return UserView(id=user_id, name=name, role=role, disabled=False, has_password=password_hash is not None,
                    created_at=now)


def get_user(conn: duckdb.DuckDBPyConnection, user_id: str) -> UserView | None:
    row = conn.execute(f"SELECT {_USER} FROM users WHERE id = ?", [user_id]).fetchone()
    return _user(row) if row else None


def list_users(conn: duckdb.DuckDBPyConnection) -> list[UserView]:
    return [_user(r) for r in conn.execute(f"SELECT {_USER} FROM users ORDER BY created_at, id").fetchall()]


def login_record(conn: duckdb.DuckDBPyConnection, name: str) -> UserLogin | None:
    """The account a login names (any case), with its password hash."""
    row = conn.execute(f"SELECT {_USER}, password_hash FROM users WHERE lower(name) = lower(?)", [name]).fetchone()
    return UserLogin(user=_user(row), password_hash=row[6]) if row else None


def change_user(conn: duckdb.DuckDBPyConnection, user_id: str, role: Role | None, disabled: bool | None,
                password_hash: str | None, now: float) -> UserView:
    """Set what is given. Disabling ends the user's sessions and revokes their API tokens."""
    if get_user(conn, user_id) is None:
        raise NotFound(f"no user '{user_id}'")
    conn.execute("UPDATE users SET role = coalesce(?, role), disabled = coalesce(?, disabled), "
                 "password_hash = coalesce(?, password_hash) WHERE id = ?", [role, disabled, password_hash, user_id])
    if disabled:
        end_credentials(conn, "session", user_id, None, None, now)
        end_credentials(conn, "api_token", user_id, None, None, now)
    found = get_user(conn, user_id)
    assert found is not None
    return found


# --- sessions, API tokens, invites -------------------------------------------------------------


def add_credential(conn: duckdb.DuckDBPyConnection, kind: CredentialKind, user_id: str, secret_hash: str,
                   name: str, expires_at: float | None, now: float) -> str:
    """Record a new secret's hash; its id. An invite replaces the user's earlier unused ones."""
    row_id = uuid.uuid4().hex[:16]
    if kind == "session":
        conn.execute("INSERT INTO sessions (id, user_id, token_hash, created_at, expires_at, last_seen_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)", [row_id, user_id, secret_hash, now, expires_at, now])
    elif kind == "api_token":
        conn.execute("INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                     [row_id, user_id, name, secret_hash, now])
    else:
        conn.execute("DELETE FROM invites WHERE user_id = ? AND used_at IS NULL", [user_id])
        conn.execute("INSERT INTO invites (id, user_id, token_hash, kind, created_at, expires_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)", [row_id, user_id, secret_hash, name, now, expires_at])
    return row_id


def session_user(conn: duckdb.DuckDBPyConnection, secret_hash: str, idle_s: float,
                 now: float) -> tuple[UserView, float] | None:
    """The active user of a live session (not expired, not idle past ``idle_s``), and when it was
    last seen; None otherwise."""
    row = conn.execute("SELECT u.id, u.name, u.role, u.disabled, u.password_hash IS NOT NULL, u.created_at, "
                       "s.last_seen_at FROM sessions s JOIN users u ON u.id = s.user_id "
                       "WHERE s.token_hash = ? AND s.expires_at > ? AND s.last_seen_at > ? AND NOT u.disabled",
                       [secret_hash, now, now - idle_s]).fetchone()
    return (_user(row[:6]), float(row[6])) if row else None


def touch_session(conn: duckdb.DuckDBPyConnection, secret_hash: str, now: float) -> None:
    conn.execute("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", [now, secret_hash])


async def authenticate(db: Engine, kind: Literal["session", "api_token"], secret_hash: str,
                       idle_s: float) -> UserView | None:
    """The active user a session or API token (by its hash) belongs to; a use is noted (at most once a
    minute), which keeps a session from going idle. A session is read on the connection: only a use to
    note takes a transaction."""
    if kind == "api_token":
        return await db.write(token_user, secret_hash)
    now = time.time()
    found = session_user(db.conn, secret_hash, idle_s, now)
    if found is None:
        return None
    if now - found[1] > 60:
        await db.write(touch_session, secret_hash)
    return found[0]


def token_user(conn: duckdb.DuckDBPyConnection, secret_hash: str, now: float) -> UserView | None:
    """The active user of an API token not revoked (and the token's use noted)."""
    row = conn.execute("SELECT t.id, t.last_used_at, t.user_id FROM api_tokens t JOIN users u ON u.id = t.user_id "
                       "WHERE t.token_hash = ? AND t.revoked_at IS NULL AND NOT u.disabled", [secret_hash]).fetchone()
    if row is None:
        return None
    if row[1] is None or now - row[1] > 60:  # noted once a minute at most
        conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", [now, row[0]])
    return get_user(conn, row[2])


def redeem_invite(conn: duckdb.DuckDBPyConnection, secret_hash: str, password_hash: str, now: float) -> UserView:
    """Use a setup or invite link once: the account gets its password. An unknown, used or expired
    link is NotFound (which of these is not told)."""
    row = conn.execute("SELECT id, user_id FROM invites WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
                       [secret_hash, now]).fetchone()
    if row is None:
        raise NotFound("this link is not valid: it was used already, it expired, or a newer one replaced it")
    conn.execute("UPDATE invites SET used_at = ? WHERE id = ?", [now, row[0]])
    return change_user(conn, row[1], None, None, password_hash, now)


def end_credentials(conn: duckdb.DuckDBPyConnection, kind: CredentialKind, user_id: str, secret_hash: str | None,
                    credential_id: str | None, now: float) -> int:
    """End one of a user's credentials (by its secret's hash or its id), or all of that kind; how many."""
    table, gone = {"session": ("sessions", None), "api_token": ("api_tokens", "revoked_at"),
                   "invite": ("invites", "used_at")}[kind]
    column = "token_hash"
    where = f"user_id = ? AND (? IS NULL OR {column} = ?) AND (? IS NULL OR id = ?)"
    args = [user_id, secret_hash, secret_hash, credential_id, credential_id]
    if gone is None:
        row = conn.execute(f"DELETE FROM {table} WHERE {where} RETURNING id", args).fetchall()
    else:
        row = conn.execute(f"UPDATE {table} SET {gone} = ? WHERE {where} AND {gone} IS NULL RETURNING id",
                           [now, *args]).fetchall()
    return len(row)


def api_tokens(conn: duckdb.DuckDBPyConnection, user_id: str) -> list[ApiTokenView]:
    """The user's tokens not revoked, newest first."""
    rows = conn.execute("SELECT id, name, created_at, last_used_at FROM api_tokens WHERE user_id = ? "
                        "AND revoked_at IS NULL ORDER BY created_at DESC, id", [user_id]).fetchall()
    return [ApiTokenView(id=r[0], name=r[1], created_at=r[2], last_used_at=r[3]) for r in rows]
