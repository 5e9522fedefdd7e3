"""Recovery and manual retry of queued steps: steps whose worker died, a dead step given fresh
attempts, and steps that waited for an integration to be reconnected."""

from __future__ import annotations

import random

import duckdb

from actors.storage.queue import (
    RetryPolicy,
    Transition,
    block_dependents,
    fail,
    settle_runs,
    task_event,
)
from core.schemas import StepOutcome

EXPIRED = "status = 'running' AND lease_expires_at < ?"  # a task whose worker stopped renewing its lease


def reclaim(
    conn: duckdb.DuckDBPyConnection,
    owners: list[str] | None,
    policy: RetryPolicy,
    rng: random.Random,
    now: float,
    keep: list[str] | None = None,
) -> Transition:
    """Running tasks whose worker is gone fail and retry: those leased to ``owners``, those
    leased to anyone not in ``keep`` (a restarted app), or, with neither, expired leases."""
    if owners is not None:
        rows = conn.execute(
            "SELECT id, attempts FROM tasks WHERE status = 'running' AND lease_owner IN (SELECT unnest(?))",
            [owners],
        ).fetchall()
        reason = "worker died while running the step"
    elif keep is not None:
        rows = conn.execute(
            "SELECT id, attempts FROM tasks WHERE status = 'running' "
            "AND coalesce(lease_owner, '') NOT IN (SELECT unnest(?::VARCHAR[]))",
            [keep],
        ).fetchall()
        reason = "the app stopped while the step was running"
    else:
        rows = conn.execute(f"SELECT id, attempts FROM tasks WHERE {EXPIRED}", [now]).fetchall()
        reason = "worker lost: lease expired"
    outcomes = [StepOutcome(task_id=tid, attempt=att, ok=False, error=reason) for tid, att in rows]
    if not outcomes:
        return Transition()
    out = fail(conn, outcomes, policy, rng, now)
    out.merge(settle_runs(conn, {e.run_id for e in out.events}, now))
    return out


def requeue(conn: duckdb.DuckDBPyConnection, task_id: str, now: float) -> Transition:
    """Give a dead task a fresh set of attempts; its blocked dependents wait on it again."""
    row = conn.execute(
        "UPDATE tasks SET status = 'ready', attempts = 0, error = NULL, next_attempt_at = NULL, finished_at = NULL, "
        "ready_at = ?, updated_at = ? WHERE id = ? AND status = 'dead' "
        "AND run_id NOT IN (SELECT id FROM runs WHERE status = 'cancelled') RETURNING id, run_id, agent, attempts",
        [now, now, task_id],
    ).fetchone()
    out = Transition()
    if row is None:
        return out
    out.accepted.add(task_id)
    out.events.append(task_event(row, "requeued", now))
    out.events.append(task_event(row, "ready", now))
    conn.execute(
        "UPDATE tasks SET status = 'pending', error = NULL, finished_at = NULL, updated_at = ? "
        "WHERE run_id = ? AND status = 'blocked'",
        [now, row[1]],
    )
    # Dependents of other dead steps go straight back to blocked.
    others = conn.execute(
        "SELECT run_id, id FROM tasks WHERE run_id = ? AND status = 'dead'", [row[1]]
    ).fetchall()
    if others:
        out.merge(block_dependents(conn, [(r, t) for r, t in others], now))
    return out


def release_waiting(conn: duckdb.DuckDBPyConnection, user_id: str, provider: str, now: float) -> Transition:
    """Tasks of ``user_id`` waiting on ``provider`` become ready (it was reconnected)."""
    rows = conn.execute(
        "UPDATE tasks SET status = 'ready', waiting_on = NULL, error = NULL, ready_at = ?, updated_at = ? "
        "WHERE status = 'waiting' AND waiting_on = ? AND run_id IN (SELECT id FROM runs WHERE user_id = ?) "
        "RETURNING id, run_id, agent, attempts",
        [now, now, provider, user_id],
    ).fetchall()
    out = Transition()
    for r in rows:
        out.events.append(task_event(r, "ready", now))
    return out
