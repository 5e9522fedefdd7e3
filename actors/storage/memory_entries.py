"""Memory entries (the truth Qdrant is rebuilt from), the sources each run was given, and learnings
with their feedback. (Uploaded documents: :mod:`actors.storage.documents`.)"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from actors.storage.events import EventLog
from core.memory_schemas import Feedback, LearningView
from core.schemas import MemorySource, Plan, RunEvent, RunView

ENTRY_COLUMNS = ("id, user_id, collection, source, source_id, content_hash, embedding_id, metadata, created_at, "
                 "content, chunk_index, embedding_model")
_LEARNING_COLUMNS = "run_id, request, plan, outcome, errors, rating, correction, comment, created_at, updated_at"
_SOURCE_COLUMNS = "collection, source_id, title, heading, snippet, score, link"


def _learning(row: tuple[Any, ...]) -> LearningView:
    run_id, request, plan, outcome, errors, rating, correction, comment, created, updated = row
    corrected = Plan.model_validate_json(correction) if correction else None
    return LearningView(
        run_id=run_id, request=request, plan=Plan.model_validate_json(plan) if plan else None, outcome=outcome,
        errors=json.loads(errors or "[]"), rating=rating, correction=corrected, comment=comment,
        usable=corrected is not None or (outcome == "done" and rating != "down" and plan is not None),
        created_at=created, updated_at=updated)


def add(conn: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    """Rows in ENTRY_COLUMNS order."""
    conn.executemany(f"INSERT INTO memory_entries ({ENTRY_COLUMNS}) VALUES ({', '.join('?' * 12)})", rows)


def hashes(conn: duckdb.DuckDBPyConnection, user_id: str, collection: str, source_id: str) -> list[str]:
    rows = conn.execute("SELECT content_hash FROM memory_entries WHERE user_id = ? AND collection = ? "
                        "AND source_id = ?", [user_id, collection, source_id]).fetchall()
    return [r[0] for r in rows]


def delete(conn: duckdb.DuckDBPyConnection, source_id: str, keep: list[str]) -> list[tuple[str, str]]:
    """Delete a source's entries, but those in ``keep``; returns (id, collection) of the deleted."""
    rows = conn.execute("DELETE FROM memory_entries WHERE source_id = ? AND NOT list_contains(?, id) "
                        "RETURNING id, collection", [source_id, keep]).fetchall()
    return [(r[0], r[1]) for r in rows]


def mark_embedded(conn: duckdb.DuckDBPyConnection, model_id: str) -> None:
    conn.execute("UPDATE memory_entries SET embedding_model = ?", [model_id])


def page(conn: duckdb.DuckDBPyConnection, after: str, limit: int) -> list[tuple[Any, ...]]:
    """Entries in id order after ``after`` (for rebuilding the vectors), in ENTRY_COLUMNS order."""
    return conn.execute(f"SELECT {ENTRY_COLUMNS} FROM memory_entries WHERE id > ? ORDER BY id LIMIT ?",
                        [after, limit]).fetchall()


def count(conn: duckdb.DuckDBPyConnection) -> int:
    row = conn.execute("SELECT count(*) FROM memory_entries").fetchone()
    return int(row[0]) if row else 0


def any_of(conn: duckdb.DuckDBPyConnection, user_id: str) -> bool:
    return conn.execute("SELECT 1 FROM memory_entries WHERE user_id = ? LIMIT 1", [user_id]).fetchone() is not None


def stale(conn: duckdb.DuckDBPyConnection, model_id: str) -> int:
    """Entries embedded by another model than ``model_id``."""
    row = conn.execute("SELECT count(*) FROM memory_entries WHERE embedding_model IS DISTINCT FROM ?",
                       [model_id]).fetchone()
    return int(row[0]) if row else 0


def ids_of(conn: duckdb.DuckDBPyConnection, source_id: str, collection: str) -> list[str]:
    rows = conn.execute("SELECT id FROM memory_entries WHERE source_id = ? AND collection = ?",
                        [source_id, collection]).fetchall()
    return [r[0] for r in rows]


# --- sources a run was given -----------------------------------------------------------------------


def add_run_sources(conn: duckdb.DuckDBPyConnection, log: EventLog,
                    entries: list[tuple[str, str | None, list[MemorySource]]], now: float) -> None:
    """Sources given to runs' planning or steps: (run id, task id or None, sources), in one statement."""
    rows = [(run_id, task_id, s.collection, s.source_id, s.title, s.heading, s.snippet, s.score, s.link, now)
            for run_id, task_id, sources in entries for s in sources]
    columns = [list(c) for c in zip(*rows, strict=True)]
    types = ["VARCHAR"] * 7 + ["DOUBLE", "VARCHAR", "DOUBLE"]
    conn.execute(f"INSERT INTO run_sources (run_id, task_id, {_SOURCE_COLUMNS}, created_at) SELECT "
                 + ", ".join(f"unnest(${i + 1}::{t}[])" for i, t in enumerate(types)), columns)
    log.append(conn, [RunEvent(kind="memory", run_id=run_id, at=now, task_id=task_id, sources=sources)
                      for run_id, task_id, sources in entries])


def run_sources(conn: duckdb.DuckDBPyConnection, run_id: str) -> list[MemorySource]:
    """The distinct sources a run's planning and steps were given, best first."""
    rows = conn.execute(
        f"SELECT {_SOURCE_COLUMNS} FROM (SELECT *, row_number() OVER (PARTITION BY collection, source_id, heading "
        "ORDER BY score DESC) AS n FROM run_sources WHERE run_id = ?) WHERE n = 1 ORDER BY score DESC", [run_id]
    ).fetchall()
    return [MemorySource(collection=r[0], source_id=r[1], title=r[2], heading=r[3] or "", snippet=r[4],
                         score=r[5], link=r[6]) for r in rows]


# --- learnings -------------------------------------------------------------------------------------


def record_learning(conn: duckdb.DuckDBPyConnection, view: RunView, now: float) -> LearningView:
    """What a finished run teaches (feedback already given is kept)."""
    run = view.run
    errors = [f"{t.step_id} ({t.agent}): {t.error}" for t in view.tasks if t.status != "done" and t.error]
    if run.error and not errors:
        errors.append(run.error)
    outcome = "done" if run.status == "done" else "failed"
    conn.execute(
        f"INSERT INTO learnings ({_LEARNING_COLUMNS}, user_id) VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?, ?) "
        "ON CONFLICT (run_id) DO UPDATE SET plan = excluded.plan, outcome = excluded.outcome, "
        "errors = excluded.errors, updated_at = excluded.updated_at",
        [run.id, run.message, run.plan.model_dump_json() if run.plan else None, outcome, json.dumps(errors),
         now, now, run.user_id])
    written = learning(conn, run.id)
    assert written is not None
    return written


def set_feedback(conn: duckdb.DuckDBPyConnection, run_id: str, feedback: Feedback, now: float) -> LearningView | None:
    conn.execute(
        "UPDATE learnings SET rating = ?, correction = ?, comment = ?, updated_at = ? WHERE run_id = ?",
        [feedback.rating, feedback.correction.model_dump_json() if feedback.correction else None,
         feedback.comment, now, run_id])
    return learning(conn, run_id)


def learning(conn: duckdb.DuckDBPyConnection, run_id: str) -> LearningView | None:
    row = conn.execute(f"SELECT {_LEARNING_COLUMNS} FROM learnings WHERE run_id = ?", [run_id]).fetchone()
    return None if row is None else _learning(row)


def learnings(conn: duckdb.DuckDBPyConnection, user_id: str | None, run_ids: list[str] | None,
              limit: int) -> list[LearningView]:
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    if user_id is not None:
        where.append("user_id = ?")
        params.append(user_id)
    if run_ids is not None:
        where.append("run_id IN (SELECT unnest(?))")
        params.append(run_ids)
    rows = conn.execute(f"SELECT {_LEARNING_COLUMNS} FROM learnings WHERE {' AND '.join(where)} "
                        "ORDER BY created_at DESC LIMIT ?", [*params, limit]).fetchall()
    return [_learning(r) for r in rows]
