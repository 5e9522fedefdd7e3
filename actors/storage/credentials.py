"""Sealed credentials: ``oauth_credentials`` (a user's tokens per provider) and ``oauth_states``
(one-use, short-lived sign-in states). The values stay sealed here; the Workspace's vault
(``integrations.actions.vault``) seals and opens them."""

from __future__ import annotations

import json

import duckdb

from core.crypto import Sealed
from core.storage_schemas import OAuthState, SealedRow, SealedTable, StoredCredential

_KEY_COLUMN: dict[SealedTable, str] = {"oauth_credentials": "id", "oauth_states": "state"}


def load(conn: duckdb.DuckDBPyConnection, user_id: str, provider: str) -> StoredCredential | None:
    row = conn.execute("SELECT id, user_id, ciphertext, nonce, key_id, coalesce(status, 'connected'), reason, "
                       "created_at FROM oauth_credentials WHERE user_id = ? AND provider = ? "
                       "ORDER BY updated_at DESC LIMIT 1", [user_id, provider]).fetchone()
    if row is None:
        return None
    return StoredCredential(id=row[0], user_id=row[1], ciphertext=row[2], nonce=row[3], key_id=row[4], status=row[5],
                            reason=row[6], created_at=row[7])


def id_of(conn: duckdb.DuckDBPyConnection, user_id: str, provider: str) -> str | None:
    row = conn.execute("SELECT id FROM oauth_credentials WHERE user_id = ? AND provider = ?",
                       [user_id, provider]).fetchone()
    return None if row is None else str(row[0])


def save(conn: duckdb.DuckDBPyConnection, row_id: str, user_id: str, provider: str, scopes: list[str],
         sealed: Sealed, now: float) -> None:
    """The row ``row_id`` (replaced if it exists), connected."""
    if conn.execute("UPDATE oauth_credentials SET ciphertext = ?, nonce = ?, key_id = ?, scopes = ?, "
                    "status = 'connected', reason = NULL, updated_at = ? WHERE id = ? RETURNING id",
                    [sealed.ciphertext, sealed.nonce, sealed.key_id, " ".join(scopes), now, row_id]).fetchone():
        return
    conn.execute("INSERT INTO oauth_credentials (id, user_id, provider, scopes, ciphertext, nonce, key_id, created_at, "
                 "updated_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'connected')",
                 [row_id, user_id, provider, " ".join(scopes), sealed.ciphertext, sealed.nonce, sealed.key_id, now,
                  now])


def update_tokens(conn: duckdb.DuckDBPyConnection, row_id: str, sealed: Sealed, now: float) -> None:
    conn.execute("UPDATE oauth_credentials SET ciphertext = ?, nonce = ?, key_id = ?, updated_at = ? WHERE id = ?",
                 [sealed.ciphertext, sealed.nonce, sealed.key_id, now, row_id])


def set_status(conn: duckdb.DuckDBPyConnection, row_id: str, status: str, reason: str | None, now: float) -> None:
    conn.execute("UPDATE oauth_credentials SET status = ?, reason = ?, updated_at = ? WHERE id = ?",
                 [status, reason, now, row_id])


def forget(conn: duckdb.DuckDBPyConnection, user_id: str, provider: str) -> None:
    conn.execute("DELETE FROM oauth_credentials WHERE user_id = ? AND provider = ?", [user_id, provider])


def put_state(conn: duckdb.DuckDBPyConnection, state: str, user_id: str, provider: str, features: list[str],
              redirect_uri: str, sealed: Sealed, now: float, expires_at: float) -> None:
    conn.execute("INSERT INTO oauth_states (state, user_id, provider, features, redirect_uri, ciphertext, nonce, "
                 "key_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [state, user_id, provider, json.dumps(features), redirect_uri, sealed.ciphertext, sealed.nonce,
                  sealed.key_id, now, expires_at])


def put_state_for(conn: duckdb.DuckDBPyConnection, state: str, user_id: str, provider: str, features: list[str],
                  redirect_uri: str, sealed: Sealed, ttl_s: float, now: float) -> None:
    """:func:`put_state`, good for ``ttl_s`` seconds from ``now``."""
    put_state(conn, state, user_id, provider, features, redirect_uri, sealed, now, now + ttl_s)


def take_state(conn: duckdb.DuckDBPyConnection, state: str, now: float) -> OAuthState | None:
    """The state, marked used; None when unknown, used already or expired."""
    row = conn.execute("UPDATE oauth_states SET used_at = ? WHERE state = ? AND used_at IS NULL AND expires_at > ? "
                       "RETURNING user_id, features, redirect_uri, ciphertext, nonce, key_id",
                       [now, state, now]).fetchone()
    if row is None:
        return None
    return OAuthState(user_id=row[0], features=json.loads(row[1]), redirect_uri=row[2], ciphertext=row[3],
                      nonce=row[4], key_id=row[5])


def not_under(conn: duckdb.DuckDBPyConnection, table: SealedTable, key_id: str) -> list[SealedRow]:
    """Rows of ``table`` sealed under another key than ``key_id``."""
    rows = conn.execute(f"SELECT {_KEY_COLUMN[table]}, user_id, ciphertext, nonce, key_id FROM {table} "
                        "WHERE key_id <> ?", [key_id]).fetchall()
    return [SealedRow(row_id=r[0], user_id=r[1], ciphertext=r[2], nonce=r[3], key_id=r[4]) for r in rows]


def reseal(conn: duckdb.DuckDBPyConnection, table: SealedTable, row_id: str, sealed: Sealed, old_key_id: str) -> None:
    """The row's new seal, unless it changed since it was read."""
    conn.execute(f"UPDATE {table} SET ciphertext = ?, nonce = ?, key_id = ? WHERE {_KEY_COLUMN[table]} = ? "
                 "AND key_id = ?", [sealed.ciphertext, sealed.nonce, sealed.key_id, row_id, old_key_id])
