"""The Store's queue operations: claiming, completing, leases, recovery and manual retry, and the
queue's counts. The transitions themselves are in :mod:`actors.storage.queue` and :mod:`actors.storage.queue_recovery`.

A mixin of :class:`actors.store.Store`: writes go through its group commit, reads use its connection.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar, cast

import duckdb

from actors.storage import conversations, queue
from actors.storage import queue_recovery as recovery
from actors.storage.events import EventLog
from core.schemas import Draft, Plan, RunEvent, StepOutcome, TaskRecord

T = TypeVar("T")
_IDLE_RECHECK_S = 5.0


class Completion:
    """One caller's outcomes for :func:`queue.complete`, as a write for the Store's group commit.

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


class QueueTables:
    _conn: duckdb.DuckDBPyConnection
    _events: EventLog
    _retry: queue.RetryPolicy
    _rng: random.Random
    _queue_changes: int  # the Store's count of transitions that may have made a task claimable
    _idle: tuple[int, float, float]  # when a claim last found nothing: (_queue_changes, next task due, checked at)
    claims_asked = 0  # by the dispatcher, answered or not

    async def _submit(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        raise NotImplementedError  # the Store's group commit

    async def claim(
        self, limits: dict[str, int], owners: dict[str, list[str]], lease_s: float
    ) -> list[tuple[TaskRecord, str, str]]:
        """Claim due tasks; returns (task, lease owner, results of its dependencies as context).

        The dispatcher asks after every batch of outcomes and, idle, every few hundred ms: when the
        last claim found nothing, no transition since made a task ready (a thousand steps finishing
        make none), and its next due time has not come, the answer is nothing without a query. The
        answer is checked again after ``_IDLE_RECHECK_S`` whatever happened.
        """
        self.claims_asked += 1
        changes, due, checked = self._idle
        now = time.time()
        if changes == self._queue_changes and now < due and now - checked < _IDLE_RECHECK_S:
            return []

        def run(conn: duckdb.DuckDBPyConnection) -> queue.Transition:
            now = time.time()
            t = queue.claim(conn, limits, owners, lease_s, now)
            if not t.claimed:  # in the same transaction: a later one that readies a task voids it
                self._idle = (self._queue_changes, queue.next_due(conn), now)
            return t

        claimed = (await self._submit(run)).claimed
        with_deps = [t for t, _ in claimed if t.depends_on]
        context: dict[str, str] = {}
        if with_deps:
            wanted = [f"{t.run_id}:{d}" for t in with_deps for d in t.depends_on]
            rows = self._conn.execute(
                "SELECT id, step_id, agent, result FROM tasks WHERE id IN (SELECT unnest(?))", [wanted]
            ).fetchall()
            by_id = {r[0]: f"[{r[1]} · {r[2]}] {r[3] or ''}" for r in rows}
            for t in with_deps:
                context[t.id] = "\n".join(by_id.get(f"{t.run_id}:{d}", "") for d in t.depends_on)
        return [(t, owner, context.get(t.id, "")) for t, owner in claimed]

    async def claim_or_due(
        self, limits: dict[str, int], owners: dict[str, list[str]], lease_s: float
    ) -> tuple[list[tuple[TaskRecord, str, str]], float]:
        """:meth:`claim`, and when it found nothing, when the next task falls due (epoch seconds;
        infinity when none waits), so an idle dispatcher can sleep until then."""
        claimed = await self.claim(limits, owners, lease_s)
        return claimed, (0.0 if claimed else self._idle[1])

    async def complete(self, outcomes: list[StepOutcome]) -> tuple[list[str], list[str]]:
        """Record outcomes; returns (accepted task ids, runs with nothing left to do)."""
        # The Store answers a Completion with its caller's part (Completion.answers), not the Transition.
        answer = await self._submit(Completion(outcomes, self._retry, self._rng))
        return cast(tuple[list[str], list[str]], answer)

    async def renew_leases(self, task_ids: list[str], lease_s: float) -> None:
        until = time.time() + lease_s
        await self._submit(lambda conn: queue.renew_leases(conn, task_ids, until))

    async def reclaim(self, owners: list[str] | None) -> tuple[list[str], list[str]]:
        """Fail the running tasks of dead workers (or expired leases); returns (task ids, finished runs).

        The dispatcher's backstop asks every second: with no lease expired it is one read, not a
        transaction."""
        if owners is None and not self._conn.execute(
                f"SELECT 1 FROM tasks WHERE {recovery.EXPIRED} LIMIT 1", [time.time()]).fetchone():
            return [], []

        def run(conn: duckdb.DuckDBPyConnection) -> queue.Transition:
            return recovery.reclaim(conn, owners, self._retry, self._rng, time.time())

        t = await self._submit(run)
        return sorted(t.accepted), sorted(t.finished_runs)

    async def reclaim_foreign(self, keep: list[str]) -> tuple[list[str], list[str]]:
        """At start-up: fail and retry running tasks leased to workers this app does not have."""
        def run(conn: duckdb.DuckDBPyConnection) -> queue.Transition:
            return recovery.reclaim(conn, None, self._retry, self._rng, time.time(), keep=keep)

        t = await self._submit(run)
        return sorted(t.accepted), sorted(t.finished_runs)

    async def release_waiting(self, user_id: str, provider: str) -> int:
        """The user's tasks waiting on ``provider`` go back to ready (it was reconnected); how many."""
        def run(conn: duckdb.DuckDBPyConnection) -> queue.Transition:
            return recovery.release_waiting(conn, user_id, provider, time.time())

        return len((await self._submit(run)).events)

    async def run_goals(self, run_ids: list[str]) -> dict[str, tuple[str, str]]:
        """Per run: (the plan's goal, the user who asked) — what each of its steps runs for."""
        rows = self._conn.execute("SELECT id, plan, user_id FROM runs WHERE id IN (SELECT unnest(?))",
                                  [run_ids]).fetchall()
        return {rid: (Plan.model_validate_json(plan).goal, user) for rid, plan, user in rows if plan}

    async def requeue(self, task_id: str) -> bool:
        def run(conn: duckdb.DuckDBPyConnection) -> queue.Transition:
            now = time.time()
            t = recovery.requeue(conn, task_id, now)
            if t.accepted:
                t.merge(queue.settle_runs(conn, [task_id.split(":", 1)[0]], now))
                conn.execute(
                    "UPDATE runs SET status = 'running', finished_at = NULL, updated_at = ? WHERE id = ?",
                    [now, task_id.split(":", 1)[0]],
                )
                self._events.append(conn, [RunEvent(kind="status", run_id=task_id.split(":", 1)[0], at=now,
                                                    status="running")])
            return t

        return bool((await self._submit(run)).accepted)

    async def list_tasks(
        self, status: str | None = None, run_id: str | None = None, limit: int = 100, agent: str | None = None,
        q: str | None = None, since: float | None = None, until: float | None = None,
    ) -> list[TaskRecord]:
        sql, params = conversations.task_filter(status, run_id, agent, q, since, until)
        rows = self._conn.execute(
            f"SELECT {queue.TASK_COLUMNS} FROM tasks {sql} ORDER BY updated_at DESC LIMIT ?", [*params, limit]
        ).fetchall()
        return [queue.row_to_task(r) for r in rows]

    async def list_drafts(self, run_id: str | None = None, limit: int = 200) -> list[Draft]:
        """Outbound actions drafted by sub-agents (never sent from here), newest first."""
        return conversations.drafts(self._conn, run_id, limit)

    async def get_task(self, task_id: str) -> TaskRecord | None:
        row = self._conn.execute(f"SELECT {queue.TASK_COLUMNS} FROM tasks WHERE id = ?", [task_id]).fetchone()
        return queue.row_to_task(row) if row else None

    async def queue_counts(self) -> dict[str, int]:
        return dict(self._conn.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall())

    async def ready_by_agent(self) -> dict[str, int]:
        rows = self._conn.execute(
            "SELECT agent, count(*) FROM tasks WHERE status IN ('ready', 'failed') GROUP BY agent"
        ).fetchall()
        return dict(rows)

    async def open_task_count(self) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM tasks WHERE status NOT IN ('done', 'dead', 'blocked')"
        ).fetchone()
        return int(row[0]) if row else 0
