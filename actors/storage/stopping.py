"""Stopping a run before its end: a person's cancel, or a budget reached. One transaction does it all,
so a restarted app finds it done: the steps not yet final become cancelled (``queue.cancel_tasks``:
never claimed again, running ones fenced out), the run's proposals no one has decided are withdrawn,
and the run ends ``cancelled`` with the reason and a listing of what was done (no LLM call).

Budgets: each run keeps the one it was given (``runs.new``); ``budget_usage`` reads what the unfinished
runs have spent (tokens from ``agent_runs``' LLM calls, seconds since the run was asked).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import duckdb
import structlog

from actors.storage import queue, runs, tasks
from actors.storage.events import EventLog
from core.budget import Budget
from core.errors import NotFound
from core.schemas import FINAL_RUN_STATUSES, RunCancel, RunStatus, TaskRecord

_SHOWN_STEPS = 50
_log = structlog.get_logger("maos.store")


@dataclass
class Cancelled:
    """What a cancel did. Not a ``queue.Transition``: its steps' events are logged here, before the run's end."""

    status: RunStatus = "cancelled"  # the run's status after the call: another when it had ended already
    newly: bool = False  # whether this call cancelled it (False: it had ended, or was cancelled before)
    running: list[str] = field(default_factory=list)  # ids of the steps that were running (workers stop them)
    cancelled: int = 0  # how many steps it cancelled
    withdrawn: list[str] = field(default_factory=list)  # ids of the actions withdrawn


def cancel(conn: duckdb.DuckDBPyConnection, log: EventLog, run_id: str, user_id: str | None, reason: str,
           now: float) -> Cancelled:
    """Stop ``run_id`` (``user_id``'s, when given): idempotent, a run already ended is left as it is."""
    row = conn.execute("SELECT status, user_id FROM runs WHERE id = ?", [run_id]).fetchone()
    if row is None or (user_id is not None and row[1] != user_id):
        raise NotFound(f"no run '{run_id}'")
    if row[0] in FINAL_RUN_STATUSES:
        return Cancelled(status=cast(RunStatus, row[0]))
    t = queue.cancel_tasks(conn, run_id, reason, now)
    log.append_task_events(conn, t.events, {})
    withdrawn = [r[0] for r in conn.execute(
        "UPDATE actions SET status = 'withdrawn', error = ?, decided_by = 'system', decided_at = ?, updated_at = ? "
        "WHERE run_id = ? AND status = 'pending' RETURNING id", [reason, now, now, run_id]).fetchall()]
    runs.finish(conn, log, run_id, "cancelled", listing(tasks.of_run(conn, run_id), reason), reason, now)
    return Cancelled(status="cancelled", newly=True, running=sorted(t.accepted), cancelled=len(t.events),
                     withdrawn=withdrawn)


def answer(run_id: str, t: Cancelled) -> RunCancel:
    """What the caller of a committed :func:`cancel` hears (logged when this call cancelled the run)."""
    if t.newly:
        _log.info("run.cancelled", run_id=run_id, steps=t.cancelled, running=len(t.running),
                  withdrawn=len(t.withdrawn))
    return RunCancel(run_id=run_id, status=t.status, cancelled=t.newly, stopped_steps=t.running,
                     withdrawn=t.withdrawn)


def listing(steps: list[TaskRecord], reason: str) -> str:
    """What a stopped run did: why it stopped, how many steps finished, and each finished step's result."""
    done = [t for t in steps if t.status == "done"]
    lines = [f"Stopped: {reason}. {len(done)} of {len(steps)} steps finished before."]
    for t in done[:_SHOWN_STEPS]:
        first = (t.result or "").strip().splitlines()
        lines.append(f"- {t.step_id} ({t.agent}): {first[0][:200] if first else ''}")
    if len(done) > _SHOWN_STEPS:
        lines.append(f"- … and {len(done) - _SHOWN_STEPS} more")
    return "\n".join(lines)


def budget_usage(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, Budget | None, int, float]]:
    """Per unfinished run: (id, its budget or None if it was given none, tokens its LLM calls used, when asked)."""
    rows = conn.execute(
        "SELECT r.id, r.budget, coalesce((SELECT sum(coalesce(a.tokens_in, 0) + coalesce(a.tokens_out, 0)) "
        "FROM agent_runs a WHERE a.run_id = r.id AND a.kind = 'llm'), 0), r.created_at FROM runs r "
        "WHERE r.status IN ('planning', 'running')").fetchall()
    return [(rid, Budget.model_validate_json(b) if b else None, int(used), float(at)) for rid, b, used, at in rows]
