"""The run event log behind the SSE stream: ordered per run, written in the writer's transaction.

Each run's events are numbered from 1 (the SSE id). Numbers come from a counter the Store keeps
in memory (it is the only writer), loaded from the table on a run's first event after a start.
A rolled-back batch leaves a gap in the numbers, never a repeat, so "everything after id N"
stays exact for a reconnecting client.

Appended events are numbered at once but written by :meth:`EventLog.write`, one INSERT for the
whole transaction (the Store calls it before COMMIT): a DuckDB statement costs ~2-3 ms here
however few its rows, and a batch of writes made one each.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Literal, cast

import duckdb

from core.events import TaskEvent
from core.schemas import RunEvent

_Phase = Literal["plan", "summary"]
RESULT_EXCERPT = 2000  # characters of a finished step's result carried in its event


class EventLog:
    def __init__(self) -> None:
        self._seq: dict[str, int] = {}
        self._touched: set[str] = set()
        self._rows: list[tuple[str, int, str, float, str]] = []  # appended, not yet written
        self._waiters: dict[str, asyncio.Event] = {}

    def append(self, conn: duckdb.DuckDBPyConnection, events: Iterable[RunEvent]) -> None:
        """Number events, to be inserted by :meth:`write` in the caller's transaction."""
        for ev in events:
            seq = self._next(conn, ev.run_id)
            stored = ev.model_copy(update={"seq": seq})
            self._rows.append((ev.run_id, seq, ev.kind, ev.at, stored.model_dump_json(exclude_none=True)))
            self._touched.add(ev.run_id)

    def drop_tokens(self, conn: duckdb.DuckDBPyConnection, run_id: str) -> None:
        """Forget the run's ``token`` events (written or still pending): the model's text as it
        streamed, superseded by the cleaned plan or summary event appended next. Their numbers are
        not reused, so a reader's ``Last-Event-ID`` stays valid."""
        self._rows = [r for r in self._rows if not (r[0] == run_id and r[2] == "token")]
        conn.execute("DELETE FROM run_events WHERE run_id = ? AND kind = 'token'", [run_id])

    def write(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Insert what was appended since the last write (before the transaction commits)."""
        if not self._rows:
            return
        columns = [list(c) for c in zip(*self._rows, strict=True)]
        self._rows = []
        conn.execute(
            "INSERT INTO run_events SELECT unnest(?::VARCHAR[]), unnest(?::INTEGER[]), unnest(?::VARCHAR[]), "
            "unnest(?::DOUBLE[]), unnest(?::VARCHAR[])",
            columns,
        )

    def append_task_events(self, conn: duckdb.DuckDBPyConnection, events: list[TaskEvent],
                           results: dict[str, str]) -> None:
        """Queue transitions as ``task`` events; a finished step carries an excerpt of its result
        (``results``: only ``queue.complete`` finishes steps, and it has them). Written as the JSON a
        ``RunEvent`` would dump (readers parse it as one) without building one: there is an event
        for every transition, and a pydantic model built, copied and dumped for each was most of
        the Store's own time in a transition."""
        for e in events:
            if e.event == "planned":  # the plan event lists every step already
                continue
            seq = self._next(conn, e.run_id)
            body: dict[str, object] = {"kind": "task", "run_id": e.run_id, "seq": seq, "at": e.at, "status": e.event,
                                       "task_id": e.task_id, "step_id": e.task_id.split(":", 1)[1], "agent": e.agent,
                                       "attempt": e.attempt}
            if e.event == "done":
                body["text"] = results.get(e.task_id, "")[:RESULT_EXCERPT]
            if e.error is not None:
                body["error"] = e.error
            if e.node is not None:
                body["node"] = e.node
            self._rows.append((e.run_id, seq, "task", e.at, json.dumps(body)))
            self._touched.add(e.run_id)

    def _next(self, conn: duckdb.DuckDBPyConnection, run_id: str) -> int:
        if run_id not in self._seq:
            row = conn.execute("SELECT coalesce(max(seq), 0) FROM run_events WHERE run_id = ?", [run_id]).fetchone()
            self._seq[run_id] = int(row[0]) if row else 0
        self._seq[run_id] += 1
        return self._seq[run_id]

    def committed(self) -> None:
        """Wake the readers of every run that got events in the batch just committed."""
        for run_id in self._touched:
            waiter = self._waiters.pop(run_id, None)
            if waiter is not None:
                waiter.set()
        self._touched.clear()

    def rolled_back(self) -> None:
        self._touched.clear()
        self._rows = []

    @staticmethod
    def read(conn: duckdb.DuckDBPyConnection, run_id: str, after: int, limit: int) -> list[RunEvent]:
        rows = conn.execute(
            "SELECT body FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?", [run_id, after, limit]
        ).fetchall()
        return [RunEvent.model_validate_json(r[0]) for r in rows]

    async def read_or_wait(self, conn: duckdb.DuckDBPyConnection, run_id: str, after: int, wait_s: float,
                           limit: int) -> list[RunEvent]:
        """Events of a run after ``after``; with ``wait_s``, when there are none yet, wait that long for
        the next ones."""
        events = self.read(conn, run_id, after, limit)
        if events or wait_s <= 0:
            return events
        await self.wait(run_id, wait_s)
        return self.read(conn, run_id, after, limit)

    async def wait(self, run_id: str, timeout_s: float) -> None:
        """Until the next commit that adds events to ``run_id``, or the timeout."""
        waiter = self._waiters.setdefault(run_id, asyncio.Event())
        try:
            await asyncio.wait_for(waiter.wait(), timeout_s)
        except TimeoutError:
            pass


def append_tokens(conn: duckdb.DuckDBPyConnection, log: EventLog, chunks: list[tuple[str, str, str]],
                  now: float) -> None:
    """Chunks of the master's replies as the model writes them: (run id, phase, text), in order (the
    master's phases are ``RunEvent.phase``'s: "plan" or "summary")."""
    log.append(conn, [RunEvent(kind="token", run_id=run_id, at=now, phase=cast(_Phase, phase), text=text)
                      for run_id, phase, text in chunks])
