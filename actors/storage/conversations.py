"""Conversations and their messages: creating one, search, one conversation with its runs, and
per-agent figures over the steps. Pure functions of a DuckDB connection."""

from __future__ import annotations

import uuid
from typing import Any

import duckdb

from core.schemas import AgentPoolView, ConversationSummary, ConversationView, Message, Run

_TITLE_CHARS = 80


def create(conn: duckdb.DuckDBPyConnection, conversation_id: str, user_id: str, title: str, now: float) -> None:
    conn.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?)", [conversation_id, user_id, title, now, now])


def new(conn: duckdb.DuckDBPyConnection, user_id: str, title: str | None, now: float) -> ConversationSummary:
    """A new, empty conversation of ``user_id``'s (untitled unless ``title``)."""
    conversation_id = uuid.uuid4().hex[:12]
    create(conn, conversation_id, user_id, title or "", now)
    return ConversationSummary(id=conversation_id, title=title or "", created_at=now, updated_at=now)


def touch(conn: duckdb.DuckDBPyConnection, conversation_id: str, user_id: str, message: str, now: float) -> None:
    """A request in the conversation (created with the request as its title if new; titled by it if untitled)."""
    conn.execute(
        "INSERT INTO conversations VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET updated_at = excluded.updated_at, "
        "title = CASE WHEN conversations.title = '' THEN excluded.title ELSE conversations.title END",
        [conversation_id, user_id, title_of(message), now, now],
    )


def add_message(conn: duckdb.DuckDBPyConnection, message_id: str, conversation_id: str, role: str, content: str,
                run_id: str, now: float) -> None:
    conn.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)", [message_id, conversation_id, role, content, run_id,
                                                                     now])


def title_of(message: str) -> str:
    """A conversation's title from its first request: one line, shortened at a word."""
    line = " ".join(message.split())
    if len(line) <= _TITLE_CHARS:
        return line
    return line[:_TITLE_CHARS].rsplit(" ", 1)[0] + "…"


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def text_and_dates(where: list[str], params: list[Any], text_sql: str, time_column: str, q: str | None,
                   since: float | None, until: float | None) -> None:
    """Add a text match (``text_sql`` has two ``?`` for the pattern) and a time window on ``time_column``."""
    if q:
        where.append(text_sql)
        params += [_like(q), _like(q)]
    if since is not None:
        where.append(f"{time_column} >= ?")
        params.append(since)
    if until is not None:
        where.append(f"{time_column} <= ?")
        params.append(until)


_SUMMARY = """
    SELECT c.id, c.title, c.created_at, c.updated_at,
           (SELECT count(*) FROM runs r WHERE r.conversation_id = c.id) AS runs,
           (SELECT r.status FROM runs r WHERE r.conversation_id = c.id ORDER BY r.created_at DESC LIMIT 1) AS last_status,
           (SELECT list(DISTINCT t.agent ORDER BY t.agent) FROM tasks t JOIN runs r ON t.run_id = r.id
             WHERE r.conversation_id = c.id) AS agents
    FROM conversations c
"""


def _summary(row: tuple[Any, ...]) -> ConversationSummary:
    cid, title, created, updated, runs, last_status, agents = row
    return ConversationSummary(id=cid, title=title or "", created_at=created, updated_at=updated, runs=int(runs),
                               last_status=last_status, agents=list(agents or []))


def search(conn: duckdb.DuckDBPyConnection, q: str | None, since: float | None, until: float | None,
           status: str | None, agent: str | None, limit: int, user_id: str | None = None) -> list[ConversationSummary]:
    """Newest first. ``q`` matches the title or any message (case-insensitive); ``since``/``until``
    bound the last activity; ``status`` is the latest run's; ``agent`` any step's type; ``user_id``: only theirs."""
    where: list[str] = []
    params: list[Any] = []
    if user_id is not None:
        where.append("c.user_id = ?")
        params.append(user_id)
    text_and_dates(where, params, "(c.title ILIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m WHERE "
                    "m.conversation_id = c.id AND m.content ILIKE ? ESCAPE '\\'))", "c.updated_at", q, since, until)
    if agent is not None:
        where.append("EXISTS (SELECT 1 FROM tasks t JOIN runs r ON t.run_id = r.id WHERE r.conversation_id = c.id "
                     "AND t.agent = ?)")
        params.append(agent)
    sql = _SUMMARY + (" WHERE " + " AND ".join(where) if where else "")
    if status is not None:
        sql = f"SELECT * FROM ({sql}) WHERE last_status = ?"
        params.append(status)
    rows = conn.execute(f"{sql} ORDER BY updated_at DESC LIMIT ?", [*params, limit]).fetchall()
    return [_summary(r) for r in rows]


def load(conn: duckdb.DuckDBPyConnection, conversation_id: str, runs: list[Run],
         user_id: str | None = None) -> ConversationView | None:
    """The conversation with its messages and ``runs`` (``actors.storage.runs.of_conversation``); with
    ``user_id``, only if it is theirs."""
    row = conn.execute(_SUMMARY + " WHERE c.id = ? AND (? IS NULL OR c.user_id = ?)",
                       [conversation_id, user_id, user_id]).fetchone()
    if row is None:
        return None
    messages = conn.execute(
        "SELECT id, role, content, run_id, created_at FROM messages WHERE conversation_id = ? ORDER BY created_at",
        [conversation_id],
    ).fetchall()
    return ConversationView(
        conversation=_summary(row),
        messages=[Message(id=m[0], role=m[1], content=m[2], run_id=m[3], created_at=m[4]) for m in messages],
        runs=runs,
    )


def recent_messages(conn: duckdb.DuckDBPyConnection, conversation_id: str, exclude_run_id: str | None,
                    limit: int) -> list[Message]:
    """The conversation's newest ``limit`` messages, oldest first, without run ``exclude_run_id``'s."""
    rows = conn.execute(
        "SELECT id, role, content, run_id, created_at FROM (SELECT * FROM messages WHERE conversation_id = ? "
        "AND run_id IS DISTINCT FROM ? ORDER BY created_at DESC LIMIT ?) ORDER BY created_at",
        [conversation_id, exclude_run_id, limit],
    ).fetchall()
    return [Message(id=m[0], role=m[1], content=m[2], run_id=m[3], created_at=m[4]) for m in rows]


def agent_stats(conn: duckdb.DuckDBPyConnection, descriptions: dict[str, str], actors: dict[str, list[str]],
                in_flight: dict[str, int], now: float) -> list[AgentPoolView]:
    rows = conn.execute(
        "SELECT agent, count(*) FILTER (WHERE status IN ('ready', 'failed')), count(*) FILTER (WHERE status = 'dead'), "
        "count(*) FILTER (WHERE status = 'done' AND finished_at >= ?) FROM tasks GROUP BY agent",
        [now - 60.0],
    ).fetchall()
    by_agent = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}
    return [
        AgentPoolView(agent=a, description=descriptions[a], actors=actors.get(a, []), in_flight=in_flight.get(a, 0),
                      queued=by_agent.get(a, (0, 0, 0))[0], dead=by_agent.get(a, (0, 0, 0))[1],
                      done_last_minute=by_agent.get(a, (0, 0, 0))[2])
        for a in sorted(descriptions)
    ]
