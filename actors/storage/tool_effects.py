"""The ``tool_effects`` table: what a step did without a person (labels changed, Gmail drafts saved,
threads read), ids and counts only, once per idempotency key, so its bounds hold across attempts."""

from __future__ import annotations

import json
from typing import Any

import duckdb


def record(conn: duckdb.DuckDBPyConnection, user_id: str, task_id: str, tool: str, key: str, result: dict[str, Any],
           now: float) -> bool:
    """Note it once per ``key``; False when it was noted already (a retried call)."""
    row = conn.execute("INSERT INTO tool_effects (idempotency_key, user_id, task_id, tool, result, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING idempotency_key",
                       [key, user_id, task_id, tool, json.dumps(result), now]).fetchone()
    return row is not None


def of_step(conn: duckdb.DuckDBPyConnection, user_id: str, task_id: str, tool: str, besides: str) -> list[dict[str, Any]]:
    """What the step recorded for ``tool``, oldest first (``besides``: leave that key out)."""
    rows = conn.execute("SELECT result FROM tool_effects WHERE user_id = ? AND task_id = ? AND tool = ? "
                        "AND idempotency_key <> ? ORDER BY created_at, idempotency_key",
                        [user_id, task_id, tool, besides]).fetchall()
    return [json.loads(r[0]) for r in rows]


def by_key(conn: duckdb.DuckDBPyConnection, user_id: str, key: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT result FROM tool_effects WHERE user_id = ? AND idempotency_key = ?",
                       [user_id, key]).fetchone()
    return None if row is None else dict(json.loads(row[0]))
