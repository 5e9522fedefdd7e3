"""The Store actor: sole owner of the DuckDB file. Writes are group-committed.

Every write is a function of the connection queued with a future; a flusher runs all queued
writes in one transaction every few milliseconds and resolves the futures only after COMMIT,
so an acknowledged write is a committed one. If a batch fails, it is rolled back and each
write is retried alone, so one bad write fails only its own caller.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from actors._boot import actor_class
from actors.storage import conversations, queue
from actors.storage.conversations import RUN_COLUMNS, row_to_run
from actors.storage.database import database_keys, open_database
from actors.storage.events import EventLog
from actors.storage.memory_entries import MemoryTables
from actors.storage.migrations import migrate
from actors.storage.tasks import Completion, QueueTables
from core.errors import NotFound, portable
from core.events import publish
from core.schemas import (
    AgentPoolView,
    ConversationSummary,
    ConversationView,
    Message,
    Plan,
    Run,
    RunEvent,
    RunView,
    ToolQuery,
)
from core.settings import Settings

T = TypeVar("T")


Write = Callable[[duckdb.DuckDBPyConnection], Any]
Job = tuple[Write, list[asyncio.Future[Any]], Callable[[Any], list[Any]]]


def _coalesced(batch: list[tuple[Write, asyncio.Future[Any]]]) -> list[Job]:
    """The batch as run: each write with the futures it answers and how. Its completions are joined
    into one write, run where the first was (they were concurrent: any order of them is one that
    could have happened)."""
    jobs: list[Job] = []
    parts: list[Completion] = []
    waiting: list[asyncio.Future[Any]] = []
    for fn, fut in batch:
        if isinstance(fn, Completion):
            if not parts:
                jobs.append((fn, waiting, lambda t: Completion.answers(t, parts)))
            parts.append(fn)
            waiting.append(fut)
        else:
            jobs.append((fn, [fut], lambda result: [result]))
    if len(parts) > 1:
        at = next(i for i, job in enumerate(jobs) if job[1] is waiting)
        jobs[at] = (Completion.joined(parts), waiting, jobs[at][2])
    return jobs


class Store(MemoryTables, QueueTables):
    """DuckDB owner. Plain class; the runtime makes it an actor."""

    def __init__(self, db_path: str, commit_interval_s: float = 0.002, retry: queue.RetryPolicy | None = None,
                 keys: Sequence[str] = (), threads: int = 1, keys_of: Settings | None = None) -> None:
        """``keys``: the database file's encryption keys (``database_keys``), current first; or
        ``keys_of``: the settings to derive them from in this process (an actor is given no secret)."""
        if keys_of is not None:
            keys = database_keys(keys_of)
        if db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = open_database(db_path, keys, threads=threads)
        migrate(self._conn)
        # Tools' reads: their own connection, used only in the reader thread. The encrypted file is
        # attached rather than the default database, so the reader is pointed at the same one.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="store-read")
        database = self._conn.execute("SELECT current_database()").fetchone()
        self._read_conn = self._conn.cursor()
        if database is not None:
            self._read_conn.execute(f'USE "{database[0]}"')
        self._interval = commit_interval_s
        self._retry = retry if retry is not None else queue.RetryPolicy()
        self._rng = random.Random()
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
        self._wake: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._events = EventLog()
        self.commits = 0
        self._queue_changes = 0  # transactions' changes that may have made a task claimable (see QueueTables)
        self._idle = (-1, 0.0, 0.0)

    # --- group commit ---------------------------------------------------------------------

    async def _submit(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        loop = asyncio.get_running_loop()
        if self._flusher is None or self._flusher.done():
            self._wake = asyncio.Event()
            self._flusher = loop.create_task(self._flush_loop())
        fut: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, fut))
        assert self._wake is not None
        self._wake.set()
        return await fut

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._interval)  # let concurrent writers join the batch
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[tuple[Write, asyncio.Future[Any]]]) -> None:
        jobs = _coalesced(batch)
        results: list[Any] = []
        try:
            self._conn.execute("BEGIN TRANSACTION")
            for fn, _, _ in jobs:
                result = fn(self._conn)
                if isinstance(result, queue.Transition):
                    self._events.append_task_events(self._conn, result.events, result.results)
                    self._queue_changes += result.adds_claimable
                results.append(result)
            self._events.write(self._conn)
            self._conn.execute("COMMIT")
            self.commits += 1
        except Exception as exc:
            self._conn.execute("ROLLBACK")
            self._events.rolled_back()
            if len(batch) > 1:
                for item in batch:
                    self._commit([item])
            elif not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        self._events.committed()
        for (_, futures, answers), result in zip(jobs, results, strict=True):
            for fut, answer in zip(futures, answers(result), strict=True):
                if not fut.done():
                    fut.set_result(answer)
        for result in results:
            if isinstance(result, queue.Transition):
                publish(result.events)

    async def flush(self) -> None:
        """Wait until every write queued so far is committed."""
        await self._submit(lambda conn: None)

    # --- generic access for tools ----------------------------------------------------------

    async def read(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """A tool's query, on its own connection in a thread: it sees what is committed, and a long one
        (a keyword search over many saved drafts) does not hold up every other step's commits."""
        return await asyncio.get_running_loop().run_in_executor(self._reader, self._read, sql, params or [])

    def _read(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return self._read_conn.execute(sql, params).fetchall()

    async def write(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        def run(conn: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
            cur = conn.execute(sql, params or [])
            return cur.fetchall() if cur.description else []

        return await self._submit(run)

    async def tool_calls(self, calls: list[ToolQuery]) -> list[list[tuple[Any, ...]] | Exception]:
        """Many tools' reads and writes, ``(kind, sql, params)``, sent together by a pool: each one's rows,
        or the error it raised (as itself when it can cross processes). The writes share a group commit."""
        done = await asyncio.gather(*((self.read if kind == "read" else self.write)(sql, params) for kind, sql, params in calls),
                                    return_exceptions=True)
        return [portable(r) if isinstance(r, BaseException) else r for r in done]

    # --- runs ------------------------------------------------------------------------------

    async def create_run(self, message: str, user_id: str, conversation_id: str | None = None) -> Run:
        now = time.time()
        run_id = uuid.uuid4().hex[:12]
        conv = conversation_id if conversation_id is not None else uuid.uuid4().hex[:12]

        def run(conn: duckdb.DuckDBPyConnection) -> None:
            conn.execute(
                "INSERT INTO conversations VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET updated_at = excluded.updated_at, "
                "title = CASE WHEN conversations.title = '' THEN excluded.title ELSE conversations.title END",
                [conv, user_id, conversations.title_of(message), now, now],
            )
            conn.execute(
                "INSERT INTO messages VALUES (?, ?, 'user', ?, ?, ?)", [uuid.uuid4().hex, conv, message, run_id, now]
            )
            conn.execute(
                f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, 'planning', NULL, NULL, NULL, ?, ?, NULL)",
                [run_id, conv, user_id, message, now, now],
            )
            self._events.append(conn, [RunEvent(kind="status", run_id=run_id, at=now, status="planning")])

        await self._submit(run)
        return Run(id=run_id, conversation_id=conv, user_id=user_id, message=message, status="planning",
                   created_at=now, updated_at=now)

    async def enqueue_plan(self, run_id: str, plan: Plan, max_attempts: int) -> None:
        """Store the plan and queue its steps, in one transaction."""
        def run(conn: duckdb.DuckDBPyConnection) -> queue.Transition:
            now = time.time()
            conn.execute(
                "UPDATE runs SET plan = ?, status = 'running', error = NULL, updated_at = ? WHERE id = ?",
                [plan.model_dump_json(), now, run_id],
            )
            # The plan's text as the model streamed it is replaced by the plan itself (cleaned of
            # images and unknown links, which a stream cannot be while it is written).
            self._events.drop_tokens(conn, run_id)
            self._events.append(conn, [RunEvent(kind="plan", run_id=run_id, at=now, plan=plan),
                                       RunEvent(kind="status", run_id=run_id, at=now, status="running")])
            return queue.enqueue_plan(conn, run_id, plan, max_attempts, now)

        await self._submit(run)

    async def set_run_status(self, run_id: str, status: str) -> None:
        def run(conn: duckdb.DuckDBPyConnection) -> None:
            now = time.time()
            conn.execute("UPDATE runs SET status = ?, updated_at = ? WHERE id = ?", [status, now, run_id])
            self._events.append(conn, [RunEvent(kind="status", run_id=run_id, at=now, status=status)])

        await self._submit(run)

    async def note_run_error(self, run_id: str, error: str) -> None:
        """Show why a run is stuck (e.g. waiting for the LLM server) without ending it."""
        def run(conn: duckdb.DuckDBPyConnection) -> None:
            now = time.time()
            row = conn.execute("UPDATE runs SET error = ?, updated_at = ? WHERE id = ? RETURNING status",
                               [error, now, run_id]).fetchone()
            if row is not None:
                self._events.append(conn, [RunEvent(kind="status", run_id=run_id, at=now, status=row[0], error=error)])

        await self._submit(run)

    async def append_tokens(self, chunks: list[tuple[str, str, str]]) -> None:
        """Chunks of the master's replies as the model writes them: (run id, phase, text), in order."""
        now = time.time()
        events = [RunEvent(kind="token", run_id=run_id, at=now, phase=phase, text=text)  # type: ignore[arg-type]
                  for run_id, phase, text in chunks]
        await self._submit(lambda conn: self._events.append(conn, events))

    async def run_events(self, run_id: str, after: int = 0, wait_s: float = 0.0, limit: int = 1000) -> list[RunEvent]:
        """Events of a run after ``after``; with ``wait_s``, wait that long for the next ones."""
        events = EventLog.read(self._conn, run_id, after, limit)
        if events or wait_s <= 0:
            return events
        await self._events.wait(run_id, wait_s)
        return EventLog.read(self._conn, run_id, after, limit)

    async def finish_run(self, run_id: str, status: str, summary: str | None, error: str | None) -> None:
        """End a run; its summary (or error) becomes the assistant's message in the conversation."""
        def run(conn: duckdb.DuckDBPyConnection) -> None:
            now = time.time()
            row = conn.execute(
                "UPDATE runs SET status = ?, summary = ?, error = ?, finished_at = ?, updated_at = ? "
                "WHERE id = ? RETURNING conversation_id",
                [status, summary, error, now, now, run_id],
            ).fetchone()
            if row is not None:
                text = summary if summary is not None else f"The run failed: {error}"
                conn.execute(
                    "INSERT INTO messages VALUES (?, ?, 'assistant', ?, ?, ?)", [uuid.uuid4().hex, row[0], text, run_id, now]
                )
                self._events.drop_tokens(conn, run_id)  # as for the plan
                self._events.append(conn, [
                    *([RunEvent(kind="summary", run_id=run_id, at=now, text=summary)] if summary is not None else []),
                    RunEvent(kind="end", run_id=run_id, at=now, status=status, error=error),
                ])

        await self._submit(run)

    async def get_run(self, run_id: str) -> RunView | None:
        row = self._conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", [run_id]).fetchone()
        if row is None:
            return None
        tasks = self._conn.execute(
            f"SELECT {queue.TASK_COLUMNS} FROM tasks WHERE run_id = ? ORDER BY seq", [run_id]
        ).fetchall()
        return RunView(run=row_to_run(row), tasks=[queue.row_to_task(t) for t in tasks], sources=self.run_sources(run_id))

    async def runs_by_status(self, statuses: list[str]) -> list[Run]:
        rows = self._conn.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE status IN (SELECT unnest(?)) ORDER BY created_at", [statuses]
        ).fetchall()
        return [row_to_run(r) for r in rows]

    async def unfinished_runs_with_no_open_tasks(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT r.id FROM runs r WHERE r.status IN ('running', 'summarizing') AND NOT EXISTS "
            "(SELECT 1 FROM tasks t WHERE t.run_id = r.id AND t.status NOT IN ('done', 'dead', 'blocked'))"
        ).fetchall()
        return [r[0] for r in rows]

    # --- conversations ---------------------------------------------------------------------

    async def create_conversation(self, user_id: str, title: str | None) -> ConversationSummary:
        now = time.time()
        conv = uuid.uuid4().hex[:12]
        await self.write("INSERT INTO conversations VALUES (?, ?, ?, ?, ?)", [conv, user_id, title or "", now, now])
        return ConversationSummary(id=conv, title=title or "", created_at=now, updated_at=now)

    async def list_conversations(self, q: str | None = None, since: float | None = None, until: float | None = None,
                                 status: str | None = None, agent: str | None = None,
                                 limit: int = 50) -> list[ConversationSummary]:
        return conversations.search(self._conn, q, since, until, status, agent, limit)

    async def get_conversation(self, conversation_id: str) -> ConversationView:
        view = conversations.load(self._conn, conversation_id)
        if view is None:
            raise NotFound(f"no conversation '{conversation_id}'")
        return view

    async def recent_turns(self, conversation_id: str, exclude_run_id: str | None = None,
                           limit: int = 64) -> list[Message]:
        """The conversation's newest messages, oldest first, without ``exclude_run_id``'s (the request answered)."""
        return conversations.recent_messages(self._conn, conversation_id, exclude_run_id, limit)

    async def agent_stats(self, descriptions: dict[str, str], actors: dict[str, list[str]],
                          in_flight: dict[str, int]) -> list[AgentPoolView]:
        return conversations.agent_stats(self._conn, descriptions, actors, in_flight, time.time())

    # --- settings saved from the UI --------------------------------------------------------

    async def settings_overrides(self) -> dict[str, Any]:
        return conversations.read_overrides(self._conn)

    async def save_settings_overrides(self, values: dict[str, Any]) -> None:
        await self._submit(lambda conn: conversations.write_overrides(conn, values, time.time()))

    async def record_llm_calls(self, calls: list[dict[str, Any]]) -> None:
        """Insert one agent_runs row per LLM call (model, tokens, latency)."""
        if not calls:
            return
        keys = ["id", "run_id", "task_id", "agent", "model", "tokens_in", "tokens_out", "latency_ms", "queued_ms", "ok", "error", "created_at"]
        columns = [[c.get(k) for c in calls] for k in keys]
        columns[0] = [uuid.uuid4().hex for _ in calls]
        sql = (
            "INSERT INTO agent_runs (id, run_id, task_id, agent, model, tokens_in, tokens_out, latency_ms, queued_ms, ok, error, created_at, kind) "
            "SELECT *, 'llm' FROM (SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), "
            "unnest(?::VARCHAR[]), unnest(?::INTEGER[]), unnest(?::INTEGER[]), unnest(?::DOUBLE[]), unnest(?::DOUBLE[]), "
            "unnest(?::BOOLEAN[]), unnest(?::VARCHAR[]), unnest(?::DOUBLE[]))"
        )
        await self._submit(lambda conn: conn.execute(sql, columns) and None)

    async def ping(self) -> bool:
        return True

    def close(self) -> None:
        """Close the database (writes not yet committed are dropped: await ``flush`` first to keep them)."""
        if self._flusher is not None and not self._flusher.done() and not self._flusher.get_loop().is_closed():
            self._flusher.cancel()
        self._reader.submit(self._read_conn.close).result()
        self._reader.shutdown()
        self._conn.close()


ActorStore = actor_class(Store)  # what Ray runs (see actors._boot)
