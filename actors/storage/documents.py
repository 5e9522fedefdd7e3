"""The ``documents`` table: uploads being indexed into memory (docs and SOPs) and the drafts that
sub-agents write. Every query a tool makes names its user.

Saved drafts, and everything when memory is not reachable, are searched by keywords here: every
query word found counts 10, each occurrence in the title 3 and in the content 1 (at most 5 per word).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import duckdb

from actors.storage._search import words_score
from core.memory_schemas import DocumentInfo, DocumentKind, DocumentView
from core.storage_schemas import Saved, StoredDocument, StoredDocumentKind

DOC_COLUMNS = "id, title, filename, kind, tags, status, chunks, chunks_done, bytes, error, created_at"
# One query word's score for the word ``t``; ``lt``/``lc`` are the lower-cased title and content, made
# once per row. Counting (a split) only where the word is found: this scan runs over every saved draft.
_TERM_SCORE = (
    "CASE WHEN contains(lc, t) THEN 10 + least(len(string_split(lc, t)) - 1, 5) ELSE 0 END"
    " + CASE WHEN contains(lt, t) THEN 3 * (len(string_split(lt, t)) - 1)"
    " + CASE WHEN contains(lc, t) THEN 0 ELSE 10 END ELSE 0 END"
)


def _doc(row: tuple[Any, ...]) -> DocumentInfo:
    did, title, filename, kind, tags, status, chunks, done, size, error, created = row
    return DocumentInfo(id=did, title=title, filename=filename or title, kind=kind, tags=json.loads(tags or "[]"),
                        status=status or "ready", chunks=chunks or 0, chunks_done=done or 0, bytes=size or 0,
                        error=error, created_at=created)


# --- uploads ---------------------------------------------------------------------------------------


def add_upload(conn: duckdb.DuckDBPyConnection, doc_id: str, user_id: str, kind: DocumentKind, title: str,
               filename: str, content: str, content_hash: str, tags: list[str], size: int, chunks: int,
               now: float) -> tuple[DocumentInfo, bool]:
    """Record an upload as indexing; for content this user already has, the existing document and True."""
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
        [doc_id, user_id, kind, title, content, json.dumps(tags), f"upload:{doc_id}", now, filename,
         content_hash, chunks, size])
    row = conn.execute(f"SELECT {DOC_COLUMNS} FROM documents WHERE id = ?", [doc_id]).fetchone()
    assert row is not None
    return _doc(row), False


def progress(conn: duckdb.DuckDBPyConnection, doc_id: str, chunks_done: int) -> None:
    conn.execute("UPDATE documents SET chunks_done = ? WHERE id = ?", [chunks_done, doc_id])


def finish(conn: duckdb.DuckDBPyConnection, doc_id: str, error: str | None) -> None:
    """Ready, or failed with the reason (its memory entries are removed)."""
    if error is None:
        conn.execute("UPDATE documents SET status = 'ready', chunks_done = chunks WHERE id = ?", [doc_id])
        return
    conn.execute("DELETE FROM memory_entries WHERE source_id = ?", [doc_id])
    conn.execute("UPDATE documents SET status = 'failed', error = ?, chunks_done = 0 WHERE id = ?", [error, doc_id])


def uploads(conn: duckdb.DuckDBPyConnection, user_id: str, kind: DocumentKind | None, q: str | None,
            limit: int) -> list[DocumentInfo]:
    where, params = ["user_id = ?", "kind IN ('doc', 'sop')"], [user_id]
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    if q:
        where.append("(title ILIKE ? OR filename ILIKE ?)")
        params += [f"%{q}%", f"%{q}%"]
    rows = conn.execute(
        f"SELECT {DOC_COLUMNS} FROM documents WHERE {' AND '.join(where)} ORDER BY created_at DESC, id LIMIT ?",
        [*params, limit]).fetchall()
    return [_doc(r) for r in rows]


def upload(conn: duckdb.DuckDBPyConnection, user_id: str, doc_id: str) -> DocumentView | None:
    row = conn.execute(f"SELECT {DOC_COLUMNS}, content FROM documents WHERE user_id = ? AND id = ? "
                       "AND kind IN ('doc', 'sop')", [user_id, doc_id]).fetchone()
    return None if row is None else DocumentView(document=_doc(row[:-1]), content=row[-1])


def delete_upload(conn: duckdb.DuckDBPyConnection, user_id: str, doc_id: str) -> list[tuple[str, str]] | None:
    """Remove a document and its entries; returns (entry id, collection) pairs, None if there is no such document."""
    if conn.execute("DELETE FROM documents WHERE user_id = ? AND id = ? AND kind IN ('doc', 'sop') RETURNING id",
                    [user_id, doc_id]).fetchone() is None:
        return None
    rows = conn.execute("DELETE FROM memory_entries WHERE source_id = ? RETURNING id, collection", [doc_id]).fetchall()
    return [(r[0], r[1]) for r in rows]


def indexing(conn: duckdb.DuckDBPyConnection, before: float) -> list[tuple[str, str]]:
    """(user, document) of uploads accepted before ``before`` and still indexing (a restart cut them off)."""
    rows = conn.execute("SELECT user_id, id FROM documents WHERE status = 'indexing' AND created_at < ?",
                        [before]).fetchall()
    return [(r[0], r[1]) for r in rows]


# --- what tools read and write ---------------------------------------------------------------------


def search(conn: duckdb.DuckDBPyConnection, user_id: str, terms: list[str], kind: StoredDocumentKind | None,
           limit: int) -> list[StoredDocument]:
    """The user's documents by keyword score (see the module note), best first; only those with a match.
    A saved draft (what a step wrote) only when ``kind`` asks for drafts, never among uploaded ones."""
    params: list[Any] = [user_id, limit, terms]
    kind_filter = " AND kind IN ('doc', 'sop')"
    if kind is not None:
        params.append(kind)
        kind_filter = f" AND kind = ${len(params)}"
    rows = conn.execute(
        f"SELECT id, kind, title, content, created_at FROM (SELECT id, kind, title, content, created_at, "
        f"{words_score('$3', _TERM_SCORE)} AS score FROM (SELECT id, kind, title, content, created_at, "
        f"lower(title) AS lt, lower(content) AS lc FROM documents WHERE user_id = $1{kind_filter})) "
        f"WHERE score > 0 ORDER BY score DESC, created_at DESC, id LIMIT $2",
        params,
    ).fetchall()
    return [StoredDocument(id=r[0], kind=r[1], title=r[2], content=r[3], created_at=r[4]) for r in rows]


def read(conn: duckdb.DuckDBPyConnection, user_id: str, doc_id: str) -> StoredDocument | None:
    row = conn.execute("SELECT id, kind, title, content, created_at FROM documents WHERE user_id = ? AND id = ?",
                       [user_id, doc_id]).fetchone()
    return None if row is None else StoredDocument(id=row[0], kind=row[1], title=row[2], content=row[3],
                                                   created_at=row[4])


def save_draft(conn: duckdb.DuckDBPyConnection, user_id: str, task_id: str, title: str, content: str, key: str,
               now: float) -> Saved:
    """A sub-agent's writing, once per ``key``: the same key again keeps the first."""
    row = conn.execute(
        "INSERT INTO documents (id, user_id, kind, title, content, tags, task_id, idempotency_key, created_at) "
        "VALUES (?, ?, 'draft', ?, ?, '[]', ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
        [uuid.uuid4().hex[:12], user_id, title, content, task_id, key, now]).fetchone()
    if row is not None:
        return Saved(id=row[0], created=True)
    found = conn.execute("SELECT id FROM documents WHERE user_id = ? AND idempotency_key = ?", [user_id, key]).fetchone()
    return Saved(id=found[0] if found else None, created=False)
