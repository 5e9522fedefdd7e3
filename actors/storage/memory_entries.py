"""The Store's memory tables: uploaded documents, memory entries (the truth Qdrant is rebuilt
from), learnings with feedback, and the sources each run was given.

A mixin of :class:`actors.store.Store`: writes go through its group commit, reads use its connection.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import duckdb

from actors.storage.events import EventLog
from core.memory_schemas import DocumentInfo, DocumentKind, DocumentView, Feedback, LearningView
from core.schemas import MemorySource, Plan, RunEvent, RunView

T = TypeVar("T")
DOC_COLUMNS = "id, title, filename, kind, tags, status, chunks, chunks_done, bytes, error, created_at"
ENTRY_COLUMNS = ("id, user_id, collection, source, source_id, content_hash, embedding_id, metadata, created_at, "
                 "content, chunk_index, embedding_model")
_LEARNING_COLUMNS = "run_id, request, plan, outcome, errors, rating, correction, comment, created_at, updated_at"
_SOURCE_COLUMNS = "collection, source_id, title, heading, snippet, score, link"


def _doc(row: tuple[Any, ...]) -> DocumentInfo:
    did, title, filename, kind, tags, status, chunks, done, size, error, created = row
    return DocumentInfo(id=did, title=title, filename=filename or title, kind=kind, tags=json.loads(tags or "[]"),
                        status=status or "ready", chunks=chunks or 0, chunks_done=done or 0, bytes=size or 0,
                        error=error, created_at=created)


def _learning(row: tuple[Any, ...]) -> LearningView:
    run_id, request, plan, outcome, errors, rating, correction, comment, created, updated = row
    corrected = Plan.model_validate_json(correction) if correction else None
    return LearningView(
        run_id=run_id, request=request, plan=Plan.model_validate_json(plan) if plan else None, outcome=outcome,
        errors=json.loads(errors or "[]"), rating=rating, correction=corrected, comment=comment,
        usable=corrected is not None or (outcome == "done" and rating != "down" and plan is not None),
        created_at=created, updated_at=updated)


class MemoryTables:
    _conn: duckdb.DuckDBPyConnection
    _events: EventLog

    async def _submit(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        raise NotImplementedError  # the Store's group commit

    # --- documents -------------------------------------------------------------------------

    async def add_document(self, doc_id: str, user_id: str, kind: DocumentKind, title: str, filename: str,
                           content: str, content_hash: str, tags: list[str], size: int,
                           chunks: int) -> tuple[DocumentInfo, bool]:
        """Record an upload as indexing; for content this user already has, the existing document and True."""
        def run(conn: duckdb.DuckDBPyConnection) -> tuple[DocumentInfo, bool]:
            same = conn.execute(
                f"SELECT {DOC_COLUMNS} FROM documents WHERE user_id = ? AND content_hash = ? AND status <> 'failed'",
                [user_id, content_hash]).fetchone()
            if same is not None:
                return _doc(same), True
            conn.execute("DELETE FROM documents WHERE user_id = ? AND content_hash = ? AND status = 'failed'",
                         [user_id, content_hash])
            conn.execute(
                "INSERT INTO documents (id, user_id, kind, title, content, tags, idempotency_key, created_at, filename, "
                "content_hash, status, chunks, chunks_done, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'indexing', ?, 0, ?)",
                [doc_id, user_id, kind, title, content, json.dumps(tags), f"upload:{doc_id}", time.time(), filename,
                 content_hash, chunks, size])
            row = conn.execute(f"SELECT {DOC_COLUMNS} FROM documents WHERE id = ?", [doc_id]).fetchone()
            assert row is not None
            return _doc(row), False

        return await self._submit(run)

    async def document_progress(self, doc_id: str, chunks_done: int) -> None:
        await self._submit(lambda conn: conn.execute(
            "UPDATE documents SET chunks_done = ? WHERE id = ?", [chunks_done, doc_id]))

    async def finish_document(self, doc_id: str, error: str | None) -> None:
        """Ready, or failed with the reason (its entries are removed in the same transaction)."""
        def run(conn: duckdb.DuckDBPyConnection) -> None:
            if error is None:
                conn.execute("UPDATE documents SET status = 'ready', chunks_done = chunks WHERE id = ?", [doc_id])
                return
            conn.execute("DELETE FROM memory_entries WHERE source_id = ?", [doc_id])
            conn.execute("UPDATE documents SET status = 'failed', error = ?, chunks_done = 0 WHERE id = ?",
                         [error, doc_id])

        await self._submit(run)

    async def list_documents(self, user_id: str, kind: DocumentKind | None = None, q: str | None = None,
                             limit: int = 200) -> list[DocumentInfo]:
        where, params = ["user_id = ?", "kind IN ('doc', 'sop')"], [user_id]
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if q:
            where.append("(title ILIKE ? OR filename ILIKE ?)")
            params += [f"%{q}%", f"%{q}%"]
        rows = self._conn.execute(
            f"SELECT {DOC_COLUMNS} FROM documents WHERE {' AND '.join(where)} ORDER BY created_at DESC, id LIMIT ?",
            [*params, limit]).fetchall()
        return [_doc(r) for r in rows]

    async def get_document(self, user_id: str, doc_id: str) -> DocumentView | None:
        row = self._conn.execute(f"SELECT {DOC_COLUMNS}, content FROM documents WHERE user_id = ? AND id = ? "
                                 "AND kind IN ('doc', 'sop')", [user_id, doc_id]).fetchone()
        return None if row is None else DocumentView(document=_doc(row[:-1]), content=row[-1])

    async def delete_document(self, user_id: str, doc_id: str) -> list[tuple[str, str]] | None:
        """Remove a document and its entries; returns (entry id, collection) pairs, None if there is no such document."""
        def run(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str]] | None:
            if conn.execute("DELETE FROM documents WHERE user_id = ? AND id = ? AND kind IN ('doc', 'sop') "
                            "RETURNING id", [user_id, doc_id]).fetchone() is None:
                return None
            rows = conn.execute("DELETE FROM memory_entries WHERE source_id = ? RETURNING id, collection",
                                [doc_id]).fetchall()
            return [(r[0], r[1]) for r in rows]

        return await self._submit(run)

    # --- memory entries --------------------------------------------------------------------

    async def add_memory_entries(self, rows: list[tuple[Any, ...]]) -> None:
        """Rows in ENTRY_COLUMNS order."""
        if rows:
            await self._submit(lambda conn: conn.executemany(
                f"INSERT INTO memory_entries ({ENTRY_COLUMNS}) VALUES ({', '.join('?' * 12)})", rows))

    async def memory_hashes(self, user_id: str, collection: str, source_id: str) -> list[str]:
        rows = self._conn.execute("SELECT content_hash FROM memory_entries WHERE user_id = ? AND collection = ? "
                                  "AND source_id = ?", [user_id, collection, source_id]).fetchall()
        return [r[0] for r in rows]

    async def delete_memory_entries(self, source_id: str, keep: list[str] | None = None) -> list[tuple[str, str]]:
        """Delete a source's entries, but those in ``keep``; returns (id, collection) of the deleted."""
        rows = await self._submit(lambda conn: conn.execute(
            "DELETE FROM memory_entries WHERE source_id = ? AND NOT list_contains(?, id) RETURNING id, collection",
            [source_id, keep or []]).fetchall())
        return [(r[0], r[1]) for r in rows]

    async def mark_embedded(self, model_id: str) -> None:
        """Every entry's vector is now from ``model_id`` (after a rebuild)."""
        await self._submit(lambda conn: conn.execute("UPDATE memory_entries SET embedding_model = ?", [model_id]))

    async def memory_entries_page(self, after: str, limit: int) -> list[tuple[Any, ...]]:
        """Entries in id order after ``after`` (for rebuilding the vectors), in ENTRY_COLUMNS order."""
        return self._conn.execute(f"SELECT {ENTRY_COLUMNS} FROM memory_entries WHERE id > ? ORDER BY id LIMIT ?",
                                  [after, limit]).fetchall()

    async def memory_entry_count(self) -> int:
        row = self._conn.execute("SELECT count(*) FROM memory_entries").fetchone()
        return int(row[0]) if row else 0

    # --- sources a run was given -----------------------------------------------------------

    async def add_run_sources(self, entries: list[tuple[str, str | None, list[MemorySource]]]) -> None:
        """Sources given to runs' planning or steps: (run id, task id or None, sources), in one statement."""
        entries = [e for e in entries if e[2]]
        if not entries:
            return

        def run(conn: duckdb.DuckDBPyConnection) -> None:
            now = time.time()
            rows = [(run_id, task_id, s.collection, s.source_id, s.title, s.heading, s.snippet, s.score, s.link, now)
                    for run_id, task_id, sources in entries for s in sources]
            columns = [list(c) for c in zip(*rows, strict=True)]
            types = ["VARCHAR"] * 7 + ["DOUBLE", "VARCHAR", "DOUBLE"]
            conn.execute(f"INSERT INTO run_sources (run_id, task_id, {_SOURCE_COLUMNS}, created_at) SELECT "
                         + ", ".join(f"unnest(${i + 1}::{t}[])" for i, t in enumerate(types)), columns)
            self._events.append(conn, [RunEvent(kind="memory", run_id=run_id, at=now, task_id=task_id, sources=sources)
                                       for run_id, task_id, sources in entries])

        await self._submit(run)

    def run_sources(self, run_id: str) -> list[MemorySource]:
        """The distinct sources a run's planning and steps were given, best first."""
        rows = self._conn.execute(
            f"SELECT {_SOURCE_COLUMNS} FROM (SELECT *, row_number() OVER (PARTITION BY collection, source_id, heading "
            "ORDER BY score DESC) AS n FROM run_sources WHERE run_id = ?) WHERE n = 1 ORDER BY score DESC", [run_id]
        ).fetchall()
        return [MemorySource(collection=r[0], source_id=r[1], title=r[2], heading=r[3] or "", snippet=r[4],
                             score=r[5], link=r[6]) for r in rows]

    # --- learnings -------------------------------------------------------------------------

    async def record_learning(self, view: RunView) -> LearningView:
        """What a finished run teaches (feedback already given is kept)."""
        run = view.run
        errors = [f"{t.step_id} ({t.agent}): {t.error}" for t in view.tasks if t.status != "done" and t.error]
        if run.error and not errors:
            errors.append(run.error)
        outcome = "done" if run.status == "done" else "failed"

        def write(conn: duckdb.DuckDBPyConnection) -> LearningView:
            now = time.time()
            conn.execute(
                f"INSERT INTO learnings ({_LEARNING_COLUMNS}, user_id) VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET plan = excluded.plan, outcome = excluded.outcome, "
                "errors = excluded.errors, updated_at = excluded.updated_at",
                [run.id, run.message, run.plan.model_dump_json() if run.plan else None, outcome, json.dumps(errors),
                 now, now, run.user_id])
            return self._learning_row(conn, run.id)  # type: ignore[return-value]  # just written

        return await self._submit(write)

    async def set_feedback(self, run_id: str, feedback: Feedback) -> LearningView | None:
        def write(conn: duckdb.DuckDBPyConnection) -> LearningView | None:
            conn.execute(
                "UPDATE learnings SET rating = ?, correction = ?, comment = ?, updated_at = ? WHERE run_id = ?",
                [feedback.rating, feedback.correction.model_dump_json() if feedback.correction else None,
                 feedback.comment, time.time(), run_id])
            return self._learning_row(conn, run_id)

        return await self._submit(write)

    @staticmethod
    def _learning_row(conn: duckdb.DuckDBPyConnection, run_id: str) -> LearningView | None:
        row = conn.execute(f"SELECT {_LEARNING_COLUMNS} FROM learnings WHERE run_id = ?", [run_id]).fetchone()
        return None if row is None else _learning(row)

    async def get_learning(self, run_id: str) -> LearningView | None:
        return self._learning_row(self._conn, run_id)

    async def learnings(self, user_id: str | None = None, run_ids: list[str] | None = None,
                        limit: int = 10_000) -> list[LearningView]:
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        if user_id is not None:
            where.append("user_id = ?")
            params.append(user_id)
        if run_ids is not None:
            where.append("run_id IN (SELECT unnest(?))")
            params.append(run_ids)
        rows = self._conn.execute(f"SELECT {_LEARNING_COLUMNS} FROM learnings WHERE {' AND '.join(where)} "
                                  "ORDER BY created_at DESC LIMIT ?", [*params, limit]).fetchall()
        return [_learning(r) for r in rows]
