"""Group commit: every write is a function of the connection, queued with a future; a flusher runs
all queued writes in one transaction every few milliseconds and resolves the futures only after
COMMIT, so an acknowledged write is a committed one. If a batch fails, it is rolled back and each
write is retried alone, so one bad write fails only its own caller.

A queue transition (:class:`actors.storage.queue.Transition`) returned by a write has its task events
written in the same transaction and published after it commits.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import duckdb

from actors.storage import queue
from actors.storage.events import EventLog
from core.events import publish
from core.schemas import StepOutcome

T = TypeVar("T")
Write = Callable[[duckdb.DuckDBPyConnection], Any]
Job = tuple[Write, list[asyncio.Future[Any]], Callable[[Any], list[Any]]]


class Completion:
    """One caller's outcomes for :func:`queue.complete`, as a write for the group commit.

    A batch runs all its completions as one call: under load the pools' reports arrive together,
    and each call was five statements of 2-6 ms here however few its rows. Each caller then gets
    its own answer (:meth:`answers`).
    """

    def __init__(self, outcomes: list[StepOutcome], policy: queue.RetryPolicy, rng: random.Random) -> None:
        self.outcomes = outcomes
        self._policy = policy
        self._rng = rng

    def __call__(self, conn: duckdb.DuckDBPyConnection) -> queue.Transition:
        return queue.complete(conn, self.outcomes, self._policy, self._rng, time.time())

    @classmethod
    def joined(cls, parts: list[Completion]) -> Completion:
        """All parts' outcomes in one, each task once (a pool resending a report is fenced anyway)."""
        seen: set[str] = set()
        outcomes = []
        for part in parts:
            for o in part.outcomes:
                if o.task_id not in seen:
                    seen.add(o.task_id)
                    outcomes.append(o)
        return cls(outcomes, parts[0]._policy, parts[0]._rng)

    @staticmethod
    def answers(t: queue.Transition, parts: list[Completion]) -> list[tuple[list[str], list[str]]]:
        """Per part: (its accepted task ids, the runs now finished among those it reported on). A task
        reported twice counts for the first part only (:meth:`joined` kept that one), and each finished
        run goes to one part only: its caller has the run finalized."""
        left = set(t.finished_runs)
        seen: set[str] = set()
        out: list[tuple[list[str], list[str]]] = []
        for part in parts:
            ids = {o.task_id for o in part.outcomes} - seen
            seen |= ids
            runs = {tid.split(":", 1)[0] for tid in ids} & left
            left -= runs
            out.append((sorted(t.accepted & ids), sorted(runs)))
        if left:  # not one of the parts' runs (cannot happen today): the first caller still hears of it
            out[0] = (out[0][0], sorted({*out[0][1], *left}))
        return out


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


class GroupCommit:
    """The writer of one connection. ``queue_changes`` counts committed transitions that may have made
    a task claimable (see :class:`actors.storage.tasks.IdleClaims`)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, events: EventLog, interval_s: float) -> None:
        self._conn = conn
        self.events = events
        self._interval = interval_s
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
        self._wake: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0
        self.queue_changes = 0

    async def submit(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``fn(conn)`` in the next transaction; its result once that transaction is committed."""
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
                    self.events.append_task_events(self._conn, result.events, result.results)
                    self.queue_changes += result.adds_claimable  # at once: a claim later in this batch sees it
                results.append(result)
            self.events.write(self._conn)
            self._conn.execute("COMMIT")
            self.commits += 1
        except Exception as exc:
            self._conn.execute("ROLLBACK")
            self.events.rolled_back()
            if len(batch) > 1:
                for item in batch:
                    self._commit([item])
            elif not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        self.events.committed()
        for (_, futures, answers), result in zip(jobs, results, strict=True):
            for fut, answer in zip(futures, answers(result), strict=True):
                if not fut.done():
                    fut.set_result(answer)
        for result in results:
            if isinstance(result, queue.Transition):
                publish(result.events)

    def stop(self) -> None:
        """Stop flushing (writes not yet committed are dropped)."""
        if self._flusher is not None and not self._flusher.done() and not self._flusher.get_loop().is_closed():
            self._flusher.cancel()
