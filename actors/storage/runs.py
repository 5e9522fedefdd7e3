"""Runs (one request, its plan and its end) and what they cost: writes append the run's events to the
log (:class:`actors.storage.events.EventLog`) in the same transaction."""

from __future__ import annotations

import uuid
from typing import Any

import duckdb

from actors.storage import conversations, queue, tasks
from actors.storage.events import EventLog
from actors.storage.memory_entries import run_sources
from core.budget import Budget
from core.errors import NotFound
from core.schemas import ConversationView, Plan, Run, RunEvent, RunView
from core.storage_schemas import RunProgress, RunUsage

RUN_COLUMNS = "id, conversation_id, user_id, message, status, plan, summary, error, created_at, updated_at, finished_at"
_LLM_CALL_KEYS = ("id", "run_id", "task_id", "agent", "model", "tokens_in", "tokens_out", "latency_ms", "queued_ms",
                  "ok", "error", "created_at", "tool_call_format")


def row_to_run(row: tuple[Any, ...]) -> Run:
    rid, conv, user, message, status, plan, summary, error, created, updated, finished = row
    return Run(
        id=rid, conversation_id=conv, user_id=user, message=message, status=status,
        plan=Plan.model_validate_json(plan) if plan else None, summary=summary, error=error,
        created_at=created, updated_at=updated, finished_at=finished,
    )


def create(conn: duckdb.DuckDBPyConnection, log: EventLog, run: Run) -> None:
    """The run, planning; the request as a user message of its conversation (made if new)."""
    conversations.touch(conn, run.conversation_id, run.user_id, run.message, run.created_at)
    conversations.add_message(conn, uuid.uuid4().hex, run.conversation_id, "user", run.message, run.id, run.created_at)
    conn.execute(f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, 'planning', NULL, NULL, NULL, ?, ?, NULL)",
                 [run.id, run.conversation_id, run.user_id, run.message, run.created_at, run.created_at])
    log.append(conn, [RunEvent(kind="status", run_id=run.id, at=run.created_at, status="planning")])


def new(conn: duckdb.DuckDBPyConnection, log: EventLog, message: str, user_id: str, conversation_id: str | None,
        budget: Budget | None, now: float) -> Run:
    """A new run, planning (in a new conversation unless ``conversation_id``); with ``budget``, the limits
    it stops at (``actors.storage.stopping``)."""
    conv = conversation_id if conversation_id is not None else uuid.uuid4().hex[:12]
    run = Run(id=uuid.uuid4().hex[:12], conversation_id=conv, user_id=user_id, message=message, status="planning",
              created_at=now, updated_at=now)
    create(conn, log, run)
    if budget is not None:
        set_budget(conn, run.id, budget)
    return run


def set_budget(conn: duckdb.DuckDBPyConnection, run_id: str, budget: Budget) -> None:
    conn.execute("UPDATE runs SET budget = ? WHERE id = ?", [budget.model_dump_json(), run_id])


def start(conn: duckdb.DuckDBPyConnection, log: EventLog, run_id: str, plan: Plan, max_attempts: int,
          now: float) -> queue.Transition:
    """Store the plan and queue its steps (none for a run cancelled while it was planned)."""
    row = conn.execute("UPDATE runs SET plan = ?, status = 'running', error = NULL, updated_at = ? "
                       "WHERE id = ? AND status <> 'cancelled' RETURNING id",
                       [plan.model_dump_json(), now, run_id]).fetchone()
    if row is None:
        return queue.Transition()
    # The plan's text as the model streamed it is replaced by the plan itself (cleaned of
    # images and unknown links, which a stream cannot be while it is written).
    log.drop_tokens(conn, run_id)
    log.append(conn, [RunEvent(kind="plan", run_id=run_id, at=now, plan=plan),
                      RunEvent(kind="status", run_id=run_id, at=now, status="running")])
    return queue.enqueue_plan(conn, run_id, plan, max_attempts, now)


def set_status(conn: duckdb.DuckDBPyConnection, log: EventLog, run_id: str, status: str, now: float) -> None:
    """A cancelled run keeps its status."""
    row = conn.execute("UPDATE runs SET status = ?, updated_at = ? WHERE id = ? AND status <> 'cancelled' RETURNING id",
                       [status, now, run_id]).fetchone()
    if row is None:
        return
    log.append(conn, [RunEvent(kind="status", run_id=run_id, at=now, status=status)])


def running_again(conn: duckdb.DuckDBPyConnection, log: EventLog, run_id: str, now: float) -> None:
    """A finished run with a step given fresh attempts runs again."""
    conn.execute("UPDATE runs SET status = 'running', finished_at = NULL, updated_at = ? WHERE id = ? "
                 "AND status <> 'cancelled'", [now, run_id])
    log.append(conn, [RunEvent(kind="status", run_id=run_id, at=now, status="running")])


def note_error(conn: duckdb.DuckDBPyConnection, log: EventLog, run_id: str, error: str, now: float) -> None:
    row = conn.execute("UPDATE runs SET error = ?, updated_at = ? WHERE id = ? RETURNING status",
                       [error, now, run_id]).fetchone()
    if row is not None:
        log.append(conn, [RunEvent(kind="status", run_id=run_id, at=now, status=row[0], error=error)])


def finish(conn: duckdb.DuckDBPyConnection, log: EventLog, run_id: str, status: str, summary: str | None,
           error: str | None, now: float) -> None:
    """End a run; its summary (or error) becomes the assistant's message in the conversation. A cancelled
    run stays as its cancel left it."""
    row = conn.execute(
        "UPDATE runs SET status = ?, summary = ?, error = ?, finished_at = ?, updated_at = ? "
        "WHERE id = ? AND status <> 'cancelled' RETURNING conversation_id",
        [status, summary, error, now, now, run_id],
    ).fetchone()
    if row is None:
        return
    text = summary if summary is not None else f"The run failed: {error}"
    conversations.add_message(conn, uuid.uuid4().hex, row[0], "assistant", text, run_id, now)
    log.drop_tokens(conn, run_id)  # as for the plan
    log.append(conn, [
        *([RunEvent(kind="summary", run_id=run_id, at=now, text=summary)] if summary is not None else []),
        RunEvent(kind="end", run_id=run_id, at=now, status=status, error=error),
    ])


def get(conn: duckdb.DuckDBPyConnection, run_id: str, user_id: str | None = None) -> RunView | None:
    """The run with its steps and sources; with ``user_id``, only if it is theirs (None otherwise, as for an
    unknown id: another person's run does not exist for them)."""
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ? AND (? IS NULL OR user_id = ?)",
                       [run_id, user_id, user_id]).fetchone()
    if row is None:
        return None
    return RunView(run=row_to_run(row), tasks=tasks.of_run(conn, run_id), sources=run_sources(conn, run_id))


def by_status(conn: duckdb.DuckDBPyConnection, statuses: list[str]) -> list[Run]:
    rows = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE status IN (SELECT unnest(?)) ORDER BY created_at",
                        [statuses]).fetchall()
    return [row_to_run(r) for r in rows]


def of_conversation(conn: duckdb.DuckDBPyConnection, conversation_id: str) -> list[Run]:
    rows = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE conversation_id = ? ORDER BY created_at",
                        [conversation_id]).fetchall()
    return [row_to_run(r) for r in rows]


def conversation(conn: duckdb.DuckDBPyConnection, conversation_id: str, user_id: str | None) -> ConversationView:
    """The conversation with its messages and runs; with ``user_id``, only if it is theirs (another
    person's is NotFound, as an unknown one)."""
    view = conversations.load(conn, conversation_id, of_conversation(conn, conversation_id), user_id)
    if view is None:
        raise NotFound(f"no conversation '{conversation_id}'")
    return view


def unfinished_with_no_open_tasks(conn: duckdb.DuckDBPyConnection) -> list[str]:
    rows = conn.execute(
        "SELECT r.id FROM runs r WHERE r.status IN ('running', 'summarizing') AND NOT EXISTS "
        "(SELECT 1 FROM tasks t WHERE t.run_id = r.id AND t.status NOT IN ('done', 'dead', 'blocked', 'cancelled'))"
    ).fetchall()
    return [r[0] for r in rows]


def goals(conn: duckdb.DuckDBPyConnection, run_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Per run: (the plan's goal, the user who asked) — what each of its steps runs for."""
    rows = conn.execute("SELECT id, plan, user_id FROM runs WHERE id IN (SELECT unnest(?))", [run_ids]).fetchall()
    return {rid: (Plan.model_validate_json(plan).goal, user) for rid, plan, user in rows if plan}


def progress(conn: duckdb.DuckDBPyConnection, run_id: str) -> RunProgress | None:
    """The run's status and its steps by status, in one small query (what a waiting client polls)."""
    row = conn.execute("SELECT status, (SELECT map(list(status), list(n)) FROM (SELECT status, count(*) AS n FROM tasks "
                       "WHERE run_id = $1 GROUP BY status)) FROM runs WHERE id = $1", [run_id]).fetchone()
    return None if row is None else RunProgress(status=row[0], tasks=dict(row[1] or {}))


def record_llm_calls(conn: duckdb.DuckDBPyConnection, calls: list[dict[str, Any]]) -> None:
    """One ``agent_runs`` row per LLM call (model, tokens, latency, the form of its tool calls), in one statement."""
    columns = [[c.get(k) for c in calls] for k in _LLM_CALL_KEYS]
    columns[0] = [uuid.uuid4().hex for _ in calls]
    conn.execute(
        f"INSERT INTO agent_runs ({', '.join(_LLM_CALL_KEYS)}, kind) "
        "SELECT *, 'llm' FROM (SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), "
        "unnest(?::VARCHAR[]), unnest(?::INTEGER[]), unnest(?::INTEGER[]), unnest(?::DOUBLE[]), unnest(?::DOUBLE[]), "
        "unnest(?::BOOLEAN[]), unnest(?::VARCHAR[]), unnest(?::DOUBLE[]), unnest(?::VARCHAR[]))",
        columns,
    )


def usage(conn: duckdb.DuckDBPyConnection, run_id: str) -> RunUsage:
    """The run's LLM calls and tokens, and how many times each of its steps was finished by a sub-agent."""
    calls, tokens_in, tokens_out = conn.execute(
        "SELECT count(*), coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0) FROM agent_runs "
        "WHERE kind = 'llm' AND run_id = ?", [run_id]).fetchone() or (0, 0, 0)
    steps = conn.execute("SELECT task_id, count(*) FROM agent_runs WHERE kind = 'subagent' AND ok AND run_id = ? "
                         "GROUP BY task_id", [run_id]).fetchall()
    return RunUsage(llm_calls=int(calls), tokens_in=int(tokens_in), tokens_out=int(tokens_out),
                    step_runs={t: int(n) for t, n in steps})
