"""The ``drafts`` table: outbound actions drafted by sub-agents, never sent from here. A draft is
saved once per idempotency key (a retried step gets the first one back)."""

from __future__ import annotations

import uuid
from typing import Any

import duckdb

from core.schemas import Draft
from core.storage_schemas import DraftChannel, Saved

_COLUMNS = "id, task_id, channel, target, subject, body, created_at"


def _draft(r: tuple[Any, ...]) -> Draft:
    return Draft(id=r[0], task_id=r[1] or "", channel=r[2], target=r[3], subject=r[4] or "", body=r[5] or "",
                 created_at=r[6])


def save(conn: duckdb.DuckDBPyConnection, user_id: str, task_id: str, channel: DraftChannel, target: str,
         subject: str, body: str, key: str, now: float) -> Saved:
    row = conn.execute(
        "INSERT INTO drafts (id, user_id, task_id, channel, target, subject, body, status, idempotency_key, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?) ON CONFLICT DO NOTHING RETURNING id",
        [uuid.uuid4().hex[:12], user_id, task_id, channel, target, subject, body, key, now]).fetchone()
    if row is not None:
        return Saved(id=row[0], created=True)
    found = conn.execute("SELECT id FROM drafts WHERE user_id = ? AND idempotency_key = ?", [user_id, key]).fetchone()
    return Saved(id=found[0] if found else None, created=False)


def of_user(conn: duckdb.DuckDBPyConnection, user_id: str, channel: DraftChannel | None, limit: int) -> list[Draft]:
    """The user's drafts, newest first; all, or one channel's."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM drafts WHERE user_id = ? AND (? IS NULL OR channel = ?) "
                        "ORDER BY created_at DESC, id LIMIT ?", [user_id, channel, channel, limit]).fetchall()
    return [_draft(r) for r in rows]


def of_run(conn: duckdb.DuckDBPyConnection, run_id: str | None, limit: int, user_id: str | None = None) -> list[Draft]:
    """Drafts newest first; all, or one run's; every user's (the operator's view), or with ``user_id`` theirs."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM drafts WHERE (? IS NULL OR task_id LIKE ?) "
                        "AND (? IS NULL OR user_id = ?) ORDER BY created_at DESC LIMIT ?",
                        [run_id, f"{run_id}:%", user_id, user_id, limit]).fetchall()
    return [_draft(r) for r in rows]
