"""The dispatcher actor: moves ready tasks from the queue to the pools, within three bounds.

Bounds: per-type in-flight, global in-flight, and the LLM gateway's slots (times an
oversubscription factor, since sub-agents also spend time in tools). Work beyond them waits in
the queue (DuckDB), not in memory. It learns of pool deaths through ``watch`` calls and gives
their tasks back to the queue at once; expired leases are reclaimed on a timer as a backstop.
The set of pools changes in a cluster (``sync_pools``: a node joined, or one was lost); each claim
offers a type's steps to its least busy pools first, so a new node's pools get work at once.

It is woken when work may have become claimable (a new plan, a retry, a pool's outcomes); else
it sleeps until the next task falls due (a retry's backoff), at most ``idle_s``: an idle app
does not ask the Store twenty times a second.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from typing import Any

import structlog

from actors.runtime import metrics
from actors.runtime.apis import MasterApi, PoolApi, StoreApi
from actors.runtime.boot import actor_class
from actors.runtime.handles import Handle
from actors.runtime.typed import fire, typed
from core.errors import ActorGone
from core.schemas import Assignment, PoolStatus, StepOutcome
from core.settings import Settings

_log = structlog.get_logger("maos.dispatcher")


class Dispatcher:
    def __init__(self, settings: Settings, store: Handle, pools: dict[str, list[Handle]], master: Handle,
                 gateway_slots: int, tick_s: float = 0.05, oversubscribe: int = 2, idle_s: float = 0.25) -> None:
        self._settings = settings
        self._store = typed(store, StoreApi)
        self._pools = pools
        self._owners = {agent: [h.name for h in hs] for agent, hs in pools.items()}
        self._by_owner = {h.name: typed(h, PoolApi) for hs in pools.values() for h in hs}
        self._master = typed(master, MasterApi)
        self._global_limit = min(settings.max_in_flight, gateway_slots * oversubscribe)
        self._oversubscribe = oversubscribe
        self._tick = tick_s
        self._idle_s = idle_s
        self._in_flight: dict[str, tuple[str, str]] = {}  # task id -> (agent, owner)
        self._goals: dict[str, tuple[str, str]] = {}  # run id -> (goal, user id)
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._watchers: dict[str, asyncio.Task[None]] = {}  # pool owner -> its watch
        self._down: set[str] = set()  # pools being restarted after a death
        self._starting: set[str] = set(self._by_owner)  # pools that have not answered yet: nothing is handed to them
        self._stopping: set[str] = set()  # runs over budget, asked to stop
        self.dispatched = 0

    async def start(self) -> dict[str, Any]:
        """Recover from whatever the previous app left, then start dispatching."""
        if self._loop_task is not None:
            return {"recovered": 0}
        counts = await self._store.queue_counts()
        # Tasks running under owners that are not this app's pools belonged to a dead app.
        reclaimed, finished = await self._store.reclaim_foreign(list(self._by_owner))
        for run in await self._store.runs_by_status(["planning"]):
            fire(self._master.resume(run.id))
        for run_id in set(finished) | set(await self._store.unfinished_runs_with_no_open_tasks()):
            fire(self._master.finalize(run_id))
        loop = asyncio.get_running_loop()
        self._loop_task = loop.create_task(self._run())
        for owner, handle in self._by_owner.items():
            self._watchers[owner] = loop.create_task(self._watch(owner, handle))
        _log.info("dispatcher.started", queue=counts, reclaimed=len(reclaimed), pools=len(self._by_owner))
        return {"recovered": len(reclaimed)}

    async def wake(self, goals: dict[str, tuple[str, str]] | None = None) -> None:
        """Look at the queue now. ``goals``: new runs' (goal, user id), what their steps run for (the
        Store is asked for the runs it is not told of)."""
        if goals:
            self._goals.update(goals)
        self._wake.set()

    async def sync_pools(self, pools: dict[str, list[Handle]]) -> dict[str, int]:
        """The app's pools as they now are (the runtime's node watcher: a node joined, or one was lost).
        New ones get work from the next claim; the steps of those no longer listed go back to the queue at
        once (their node is gone: they are retried elsewhere, each side effect still at most once).
        Returns how many were added and dropped."""
        listed = {h.name: h for hs in pools.values() for h in hs}
        added = [o for o in listed if o not in self._by_owner]
        dropped = [o for o in self._by_owner if o not in listed]
        for owner in added:
            self._by_owner[owner] = typed(listed[owner], PoolApi)
            self._starting.add(owner)
            if self._loop_task is not None:
                self._watchers[owner] = asyncio.get_running_loop().create_task(self._watch(owner, self._by_owner[owner]))
        for owner in dropped:
            del self._by_owner[owner]
            watcher = self._watchers.pop(owner, None)
            if watcher is not None:
                watcher.cancel()
        self._pools = pools
        self._owners = {agent: [h.name for h in hs] for agent, hs in pools.items()}
        if dropped:
            _log.warning("dispatcher.pools_dropped", pools=len(dropped))
            await self._reclaim(dropped)
            self._down -= set(dropped)
            self._starting -= set(dropped)
        if added:
            _log.info("dispatcher.pools_added", pools=len(added))
        self._wake.set()
        return {"added": len(added), "dropped": len(dropped)}

    async def configure(self, settings: Settings, gateway_slots: int) -> None:
        """New in-flight limits; tasks already running finish under the old ones."""
        self._settings = settings
        self._global_limit = min(settings.max_in_flight, gateway_slots * self._oversubscribe)
        self._wake.set()

    async def _run(self) -> None:
        last_reclaim = time.monotonic()
        wait = self._tick
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                reclaim_every = min(1.0, self._settings.lease_s / 3)
                if time.monotonic() - last_reclaim > reclaim_every:
                    last_reclaim = time.monotonic()
                    await self._reclaim(None)
                    await self._check_budgets()
                    if metrics.exporting():  # the queue's depth in Ray's metrics, every second or so
                        ready = await self._store.ready_by_agent()
                        metrics.queue_ready({a: ready.get(a, 0) for a in self._pools})
                due = await self._dispatch()
                wait = min(max(due - time.time(), self._tick), self._idle_s, reclaim_every)
            except Exception:
                _log.exception("dispatcher.tick_failed")
                wait = self._tick
                await asyncio.sleep(0.5)

    def _limits(self) -> dict[str, int]:
        per_type = Counter(agent for agent, _ in self._in_flight.values())
        room = self._global_limit - len(self._in_flight)
        if room <= 0:
            return {}
        return {a: min(self._settings.per_type_in_flight - per_type[a], room) for a in self._pools}

    async def _dispatch(self) -> float:
        """Hand out what the limits allow; returns when to look again unwoken (epoch seconds): at
        once while the queue may hold more, else when its next task falls due. At the limits, a
        pool's outcomes wake it."""
        while True:
            limits = {a: n for a, n in self._limits().items() if n > 0}
            if not limits:
                return float("inf")
            busy = Counter(owner for _, owner in self._in_flight.values())
            up = {a: sorted((o for o in owners if o not in self._down and o not in self._starting), key=lambda o: busy[o])
                  for a, owners in self._owners.items()}  # the least busy first: a claim deals round-robin
            claimed, due = await self._store.claim_or_due(limits=limits, owners=up, lease_s=self._settings.lease_s)
            if not claimed:
                return float(due)
            by_owner: dict[str, list[Assignment]] = defaultdict(list)
            for task, owner, context in claimed:
                self._in_flight[task.id] = (task.agent, owner)
                by_owner[owner].append(Assignment(task=task, attempt=task.attempts, lease_owner=owner, context=context))
            missing = {a.task.run_id for batch in by_owner.values() for a in batch} - set(self._goals)
            if missing:
                self._goals.update(await self._store.run_goals(sorted(missing)))
            for owner, batch in by_owner.items():
                goals = {a.task.run_id: self._goals.get(a.task.run_id, ("", "")) for a in batch}
                fire(self._by_owner[owner].run(assignments=batch, goals=goals))
            self.dispatched += len(claimed)
            if sum(limits.values()) > len(claimed):
                return 0.0  # the queue had less than we could take (a type's may have been held back)

    async def cancel(self, run_id: str) -> None:
        """The run was stopped (its steps are cancelled in the queue): every pool stops its running steps of
        it at their next await, and drops any of them handed over later (a claim that crossed the cancel)."""
        for handle in self._by_owner.values():
            fire(handle.cancel(run_id))
        self._goals.pop(run_id, None)
        # Its steps are fenced in the queue now: they no longer hold room in flight, even one whose pool
        # never reports it (a pool that died with it, or is still starting), which would hold it for good.
        prefix = f"{run_id}:"
        for task_id in [t for t in self._in_flight if t.startswith(prefix)]:
            self._in_flight.pop(task_id, None)
        self._wake.set()

    async def _check_budgets(self) -> None:
        """The one check of runs' budgets (tokens, wall-clock: ``Budget.run_stop_reason``), every second or
        so; a run past one is stopped as a cancel is, with the reason. A run kept no budget gets the settings'."""
        now = time.time()
        usage = await self._store.budget_usage()
        self._stopping &= {run_id for run_id, _, _, _ in usage}  # those stopped are no longer listed
        for run_id, budget, used, started in usage:
            reason = (budget if budget is not None else self._settings.budget).run_stop_reason(used, started, now)
            if reason is not None and run_id not in self._stopping:
                self._stopping.add(run_id)
                _log.warning("run.over_budget", run_id=run_id, reason=reason)
                fire(self._master.cancel(run_id=run_id, user_id=None, reason=reason))

    async def report(self, owner: str, outcomes: list[StepOutcome]) -> None:
        """Outcomes from a pool: committed before this returns, so the pool may forget them."""
        _, finished = await self._store.complete(outcomes)
        for o in outcomes:
            self._in_flight.pop(o.task_id, None)
        self._finish(finished)
        self._wake.set()

    def _finish(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            self._goals.pop(run_id, None)
            self._stopping.discard(run_id)
            fire(self._master.finalize(run_id))

    async def _reclaim(self, owners: list[str] | None) -> None:
        ids, finished = await self._store.reclaim(owners)
        if ids:
            _log.warning("dispatcher.reclaimed", tasks=len(ids), owners=owners)
        for tid in ids:
            self._in_flight.pop(tid, None)
        if owners is not None:
            for tid, (_, owner) in list(self._in_flight.items()):
                if owner in owners:
                    self._in_flight.pop(tid, None)
        self._finish(finished)
        if ids:
            self._wake.set()

    async def _watch(self, owner: str, handle: PoolApi) -> None:
        await self._answered(owner, handle)
        while True:
            try:
                await handle.watch()
            except ActorGone as exc:
                # One death is reclaimed once. Until the runtime has restarted the pool, nothing is
                # handed to it (a slow restart must not read as more deaths, each costing every
                # running step an attempt); its steps go to its siblings or wait in the queue.
                _log.warning("pool.died", owner=owner, error=str(exc))
                self._down.add(owner)
                try:
                    await self._reclaim([owner])
                    await self._restarted(handle)
                finally:
                    self._down.discard(owner)
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("pool.watch_failed", owner=owner)
                await asyncio.sleep(1.0)

    async def _answered(self, owner: str, handle: PoolApi) -> None:
        """Nothing is handed to a pool before it first answers: one still starting (24 pools start one after
        another on a three-node cluster) held the steps handed to it past their leases, each expiry an attempt."""
        delay = 0.1
        while owner in self._starting:
            try:
                await handle.ping()
                self._starting.discard(owner)
                self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # gone before it ever answered (its node lost): the watcher drops it
                _log.warning("pool.not_answering", owner=owner, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    @staticmethod
    async def _restarted(handle: PoolApi) -> None:
        delay = 0.2
        while True:
            await asyncio.sleep(delay)
            try:
                await handle.ping()
                return
            except ActorGone:
                delay = min(delay * 2, 5.0)

    async def status(self) -> list[PoolStatus]:
        ready = await self._store.ready_by_agent()
        per_type = Counter(agent for agent, _ in self._in_flight.values())
        return [PoolStatus(agent=a, actors=len(hs), in_flight=per_type[a], ready=ready.get(a, 0))
                for a, hs in sorted(self._pools.items())]

    async def in_flight(self) -> int:
        return len(self._in_flight)

    async def in_flight_by_agent(self) -> dict[str, int]:
        return dict(Counter(agent for agent, _ in self._in_flight.values()))

    async def ping(self) -> bool:
        return True


ActorDispatcher = actor_class(Dispatcher)  # what Ray runs (see actors.runtime.boot)
