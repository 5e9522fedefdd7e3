"""The dispatcher's side of the queue as the Store runs it, each step one transaction of the group
commit: claiming due tasks with their dependencies' results (an idle claim may be answered without
a query: ``tasks.IdleClaims``), recording outcomes, failing the tasks of dead workers, and giving a
dead step fresh attempts."""

from __future__ import annotations

import random
import time
from typing import cast

import duckdb

from actors.storage import queue, queue_recovery, runs, tasks
from actors.storage.commit import Completion
from actors.storage.engine import Engine
from core.schemas import StepOutcome, TaskRecord

Claimed = tuple[TaskRecord, str, str]  # a claimed task, its lease owner, its dependencies' results


class TaskClaims:
    def __init__(self, engine: Engine, retry: queue.RetryPolicy | None = None) -> None:
        self._db = engine
        self._retry = retry if retry is not None else queue.RetryPolicy()
        self._rng = random.Random()
        self._idle = tasks.IdleClaims()

    @property
    def next_due(self) -> float:
        """When the next task falls due, as the last claim that found none saw it (epoch seconds)."""
        return self._idle.next_due

    async def claim(self, limits: dict[str, int], owners: dict[str, list[str]], lease_s: float) -> list[Claimed]:
        changes = self._db.commit
        if self._idle.skips(changes.queue_changes, time.time()):
            return []

        def run(conn: duckdb.DuckDBPyConnection) -> queue.Transition:
            now = time.time()
            t = queue.claim(conn, limits, owners, lease_s, now)
            if not t.claimed:
                self._idle.found_none(changes.queue_changes, queue.next_due(conn), now)
            return t

        claimed = (await self._db.submit(run)).claimed
        context = tasks.dependency_results(self._db.conn, [t for t, _ in claimed])
        return [(t, owner, context.get(t.id, "")) for t, owner in claimed]

    async def complete(self, outcomes: list[StepOutcome]) -> tuple[list[str], list[str]]:
        # The group commit answers a Completion with its caller's part (Completion.answers), not the Transition.
        return cast(tuple[list[str], list[str]], await self._db.submit(Completion(outcomes, self._retry, self._rng)))

    async def reclaim(self, owners: list[str] | None, keep: list[str] | None = None) -> tuple[list[str], list[str]]:
        """With no owners and no lease expired, one read and no transaction."""
        if owners is None and keep is None and not tasks.any_expired(self._db.conn, time.time()):
            return [], []
        t = await self._db.submit(lambda conn: queue_recovery.reclaim(conn, owners, self._retry, self._rng,
                                                                      time.time(), keep=keep))
        return sorted(t.accepted), sorted(t.finished_runs)

    async def requeue(self, task_id: str) -> bool:
        run_id = task_id.split(":", 1)[0]

        def run(conn: duckdb.DuckDBPyConnection) -> queue.Transition:
            now = time.time()
            t = queue_recovery.requeue(conn, task_id, now)
            if t.accepted:
                t.merge(queue.settle_runs(conn, [run_id], now))
                runs.running_again(conn, self._db.events, run_id, now)
            return t

        return bool((await self._db.submit(run)).accepted)
