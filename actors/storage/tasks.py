"""Reads over the queue's ``tasks``: what a claimed step is given, listings and counts, and when an
idle claim may skip its query. The transitions themselves are in :mod:`actors.storage.queue` and
:mod:`actors.storage.queue_recovery`."""

from __future__ import annotations

from typing import Any

import duckdb

from actors.storage import queue
from actors.storage.conversations import text_and_dates
from actors.storage.queue_recovery import EXPIRED
from core.schemas import TaskRecord

_IDLE_RECHECK_S = 5.0
_OWNED = "run_id IN (SELECT id FROM runs WHERE user_id = ?)"  # a step belongs to whoever asked for its run


class IdleClaims:
    """When the last claim found nothing, no transition since made a task ready (a thousand steps
    finishing make none: ``GroupCommit.queue_changes``), and the next due time has not come, a claim
    is answered nothing without a query. The answer is checked again after ``_IDLE_RECHECK_S``."""

    def __init__(self) -> None:
        self._last = (-1, 0.0, 0.0)  # (queue changes, next task due, checked at)

    def skips(self, changes: int, now: float) -> bool:
        seen, due, checked = self._last
        return changes == seen and now < due and now - checked < _IDLE_RECHECK_S

    def found_none(self, changes: int, next_due: float, now: float) -> None:
        """Noted in the claim's own transaction: a later one that readies a task voids it."""
        self._last = (changes, next_due, now)

    @property
    def next_due(self) -> float:
        return self._last[1]


def dependency_results(conn: duckdb.DuckDBPyConnection, claimed: list[TaskRecord]) -> dict[str, str]:
    """Per claimed task with dependencies: their results, one per line, as its context."""
    with_deps = [t for t in claimed if t.depends_on]
    if not with_deps:
        return {}
    wanted = [f"{t.run_id}:{d}" for t in with_deps for d in t.depends_on]
    rows = conn.execute("SELECT id, step_id, agent, result FROM tasks WHERE id IN (SELECT unnest(?))",
                        [wanted]).fetchall()
    by_id = {r[0]: f"[{r[1]} · {r[2]}] {r[3] or ''}" for r in rows}
    return {t.id: "\n".join(by_id.get(f"{t.run_id}:{d}", "") for d in t.depends_on) for t in with_deps}


def any_expired(conn: duckdb.DuckDBPyConnection, now: float) -> bool:
    return conn.execute(f"SELECT 1 FROM tasks WHERE {EXPIRED} LIMIT 1", [now]).fetchone() is not None


def listed(conn: duckdb.DuckDBPyConnection, status: str | None, run_id: str | None, limit: int, agent: str | None,
           q: str | None, since: float | None, until: float | None, user_id: str | None = None) -> list[TaskRecord]:
    """Newest change first; ``q`` matches the instruction or result, ``since``/``until`` bound the last change;
    ``user_id``: only the steps of their runs."""
    where: list[str] = []
    params: list[Any] = []
    if user_id is not None:
        where.append(_OWNED)
        params.append(user_id)
    for column, value in (("status", status), ("run_id", run_id), ("agent", agent)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    text_and_dates(where, params, "(instruction ILIKE ? ESCAPE '\\' OR result ILIKE ? ESCAPE '\\')", "updated_at",
                   q, since, until)
    sql = "WHERE " + " AND ".join(where) if where else ""
    rows = conn.execute(f"SELECT {queue.TASK_COLUMNS} FROM tasks {sql} ORDER BY updated_at DESC LIMIT ?",
                        [*params, limit]).fetchall()
    return [queue.row_to_task(r) for r in rows]


def of_run(conn: duckdb.DuckDBPyConnection, run_id: str) -> list[TaskRecord]:
    rows = conn.execute(f"SELECT {queue.TASK_COLUMNS} FROM tasks WHERE run_id = ? ORDER BY seq", [run_id]).fetchall()
    return [queue.row_to_task(t) for t in rows]


def get(conn: duckdb.DuckDBPyConnection, task_id: str, user_id: str | None = None) -> TaskRecord | None:
    """The step; with ``user_id``, only if its run is theirs."""
    row = conn.execute(f"SELECT {queue.TASK_COLUMNS} FROM tasks WHERE id = ? AND (? IS NULL OR {_OWNED})",
                       [task_id, user_id, user_id]).fetchone()
    return queue.row_to_task(row) if row else None


def counts(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(conn.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall())


def ready_by_agent(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(conn.execute("SELECT agent, count(*) FROM tasks WHERE status IN ('ready', 'failed') "
                             "GROUP BY agent").fetchall())


def open_count(conn: duckdb.DuckDBPyConnection) -> int:
    row = conn.execute("SELECT count(*) FROM tasks WHERE status NOT IN ('done', 'dead', 'blocked', 'cancelled')").fetchone()
    return int(row[0]) if row else 0


def running_by_node(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Steps running now on each Ray node (by the node's first 8 hex digits, as ``tasks.node`` has it)."""
    return dict(conn.execute("SELECT node, count(*) FROM tasks WHERE status = 'running' AND node IS NOT NULL "
                             "GROUP BY node").fetchall())


def waiting_count(conn: duckdb.DuckDBPyConnection, user_id: str, provider: str) -> int:
    """The user's steps waiting for ``provider`` to be reconnected."""
    row = conn.execute("SELECT count(*) FROM tasks WHERE status = 'waiting' AND waiting_on = ? "
                       "AND run_id IN (SELECT id FROM runs WHERE user_id = ?)", [provider, user_id]).fetchone()
    return int(row[0]) if row else 0

