"""A sub-agent pool actor: many sub-agents of one type as coroutines in one process.

The dispatcher hands it claimed tasks (``run``); each sub-agent then runs as the pool's own task,
named for Ray's dashboard after its agent type, run and step (``step``, started through
:mod:`actors.runtime.named_tasks`: on the pool's own event loop, sharing its batching). Outcomes go
back to the dispatcher in batches every few milliseconds; leases of running tasks are renewed while
they run. A pool that dies is noticed through ``watch`` and its tasks are retried elsewhere. Its
figures (sub-agents in flight, steps ended) go to Ray's metrics (:mod:`actors.runtime.metrics`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import structlog

from actors.agents import get as get_spec
from actors.agents.chat_batch import BatchedCalls, BatchedChat
from actors.agents.context import StoreForUser
from actors.agents.subagent import run_subagent
from actors.runtime import metrics
from actors.runtime.apis import DispatcherApi, GatewayApi, MemoryApi, StoreApi, WorkspaceApi
from actors.runtime.boot import actor_class
from actors.runtime.handles import Handle
from actors.runtime.named_tasks import own_tasks, task_name
from actors.runtime.typed import fire, typed
from core.action_schemas import ActionType, ActionView
from core.memory_schemas import DocumentKind, UploadResult
from core.schemas import Assignment, MemoryCollection, MemorySource, StepOutcome
from core.settings import Settings

_log = structlog.get_logger("maos.pool")


class _StoreForTools:
    """The Store's operations for tools: those of a moment, from any of the pool's steps, go in one call
    (``tool_ops``). Each step's tools reach it through ``for_user``, bound to the step's user."""

    def __init__(self, store: StoreApi) -> None:
        self._ops: BatchedCalls = BatchedCalls(lambda ops: store.tool_ops(ops))

    def for_user(self, user_id: str) -> StoreForUser:
        return StoreForUser(user_id, self._ops)


class _MemoryForTools:
    """The Memory handle seen through the ToolMemory protocol; searches of a moment go together (``search_many``)."""

    def __init__(self, memory: MemoryApi) -> None:
        self._memory = memory
        self._searches = BatchedCalls(lambda searches: memory.search_many(searches))

    async def search(self, user_id: str, query: str, collections: list[MemoryCollection],
                     limit: int) -> list[MemorySource]:
        return await self._searches((user_id, query, collections, limit))

    async def ingest(self, user_id: str, filename: str, data: bytes, kind: DocumentKind,
                     tags: list[str]) -> UploadResult:
        return await self._memory.ingest(user_id=user_id, filename=filename, data=data, kind=kind, tags=tags)


class _WorkspaceForTools:
    """The Workspace handle seen through the ToolWorkspace protocol."""

    def __init__(self, workspace: WorkspaceApi) -> None:
        self._workspace = workspace

    async def google(self, user_id: str, op: str, args: dict[str, Any]) -> Any:
        return await self._workspace.google(user_id=user_id, op=op, args=args)

    async def propose(self, user_id: str, run_id: str | None, task_id: str | None, idempotency_key: str,
                      action: ActionType, arguments: dict[str, Any]) -> ActionView:
        return await self._workspace.propose(user_id=user_id, run_id=run_id, task_id=task_id,
                                             idempotency_key=idempotency_key, action=action, arguments=arguments)


_CANCELLED_KEPT = 10_000


def _stopped(a: Assignment) -> StepOutcome:
    return StepOutcome(task_id=a.task.id, attempt=a.attempt, ok=False, error="cancelled: the run was stopped",
                       retryable=False)


def step_task_name(agent: str, a: Assignment) -> str:
    """What Ray's dashboard calls the sub-agent running ``a``: its agent type, run and step
    (``"email 3f9a0c s3"``), and the attempt from the second on (``"… s3 try 2"``)."""
    parts = [agent, a.task.run_id, a.task.step_id]
    return task_name(*parts, "try", str(a.attempt)) if a.attempt > 1 else task_name(*parts)


def step_end(outcome: StepOutcome, a: Assignment, cancelled: bool) -> metrics.StepEnd:
    """What becomes of a step with ``outcome``, as the queue will decide it (for the figures)."""
    if outcome.ok:
        return "done"
    if cancelled:
        return "cancelled"
    if outcome.wait or outcome.wait_on is not None:
        return "waiting"
    return "retried" if outcome.retryable and a.attempt < a.task.max_attempts else "dead"


_Job = tuple[Assignment, str, str, asyncio.Task[list[str]], int]  # what ``step`` runs: a, goal, user, recall, index


class SubAgentPool:
    def __init__(self, agent: str, owner: str, settings: Settings, gateway: Handle, store: Handle,
                 dispatcher: Handle, report_interval_s: float = 0.005, memory: Handle | None = None,
                 workspace: Handle | None = None, report_gap_s: float = 0.05) -> None:
        self.agent = agent
        self.owner = owner
        self._spec = get_spec(agent)
        self._settings = settings
        self._chat = BatchedChat(typed(gateway, GatewayApi))  # its sub-agents' LLM calls, a few Ray calls for many
        self._gateway = typed(gateway, GatewayApi)
        self._store = typed(store, StoreApi)
        self._tool_store = _StoreForTools(self._store)
        self._dispatcher = typed(dispatcher, DispatcherApi)
        self._memory = typed(memory, MemoryApi) if memory is not None else None
        self._tool_memory = _MemoryForTools(self._memory) if self._memory is not None else None
        self._tool_workspace = _WorkspaceForTools(typed(workspace, WorkspaceApi)) if workspace is not None else None
        self._interval = report_interval_s
        self._gap = report_gap_s
        self._last_report = 0.0
        self._tasks = own_tasks(self)  # each sub-agent a task of the pool's own, named (see ``step``)
        self._starting: dict[str, _Job] = {}  # handed over, its named task not yet begun
        self._running: dict[str, asyncio.Task[Any] | None] = {}  # handed over and not reported (None: not begun)
        self._in_flight = 0  # handed over and not ended
        self._cancelled: dict[str, None] = {}  # runs stopped (newest last, bounded): their steps never start
        self._outbox: list[StepOutcome] = []
        self._reporter: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._forever: asyncio.Future[None] | None = None
        self.completed = 0

    async def run(self, assignments: list[Assignment], goals: dict[str, tuple[str, str]]) -> int:
        """Start one sub-agent per assignment; returns at once."""
        loop = asyncio.get_running_loop()
        if self._renewer is None:
            self._renewer = loop.create_task(self._renew_leases())
        by_user: dict[str, list[Assignment]] = defaultdict(list)
        for a in assignments:
            if a.task.run_id in self._cancelled:  # handed over as its run was stopped: never started
                self._in_flight += 1
                self._finished(_stopped(a), a)
            elif a.task.id not in self._running:
                by_user[goals.get(a.task.run_id, ("", ""))[1] or self._settings.user_id].append(a)
        for user_id, batch in by_user.items():
            recalled = loop.create_task(self._recall(user_id, batch))
            for i, a in enumerate(batch):
                self._starting[a.task.id] = (a, goals.get(a.task.run_id, ("", ""))[0], user_id, recalled, i)
                self._running[a.task.id] = None
                self._in_flight += 1
                self._tasks.start("step", step_task_name(self.agent, a), a.task.id)
        metrics.subagents_in_flight(self.agent, self.owner, self._in_flight)
        return len(assignments)

    async def step(self, task_id: str) -> None:
        """One sub-agent at work, on the pool's own event loop: ``run`` starts it as a task of its own,
        named for Ray's dashboard (``step_task_name``). Only the task id crosses Ray; the rest waits here.
        Not for other callers: a task id ``run`` was not handed does nothing."""
        job = self._starting.pop(task_id, None)
        if job is None:
            return
        a, goal, user_id, recalled, i = job
        if a.task.run_id in self._cancelled:  # stopped before it began
            self._finished(_stopped(a), a)
            return
        self._running[task_id] = asyncio.current_task()  # what ``cancel`` cancels
        await self._one(a, goal, user_id, recalled, i)

    async def _one(self, a: Assignment, goal: str, user_id: str, recalled: asyncio.Task[list[str]], i: int) -> None:
        """One step, run for the user who asked (their leads, documents and memories only)."""
        try:
            memory = (await recalled)[i]
            store = self._tool_store.for_user(user_id)  # every storage operation of the step's tools: this user's
            outcome = await run_subagent(a, self._spec, self._chat.chat, store, user_id, goal,
                                         self._settings.max_turns, memory=memory,
                                         recall=self._tool_memory, workspace=self._tool_workspace,
                                         max_tool_calls=self._settings.max_tool_calls_per_turn,
                                         link_hosts=self._settings.link_allow_list)
        except asyncio.CancelledError:
            if a.task.run_id not in self._cancelled:
                raise  # the pool is going away
            outcome = _stopped(a)  # its run was stopped: the queue has the step cancelled already
        except Exception as exc:  # a bug in a tool or the loop: fail the step visibly, keep the pool alive
            _log.exception("subagent.crashed", task_id=a.task.id, agent=self.agent)
            outcome = StepOutcome(task_id=a.task.id, attempt=a.attempt, ok=False, error=f"sub-agent crashed: {exc!r}")
        self._finished(outcome, a)

    def _finished(self, outcome: StepOutcome, a: Assignment) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        metrics.subagents_in_flight(self.agent, self.owner, self._in_flight)
        metrics.step_ended(self.agent, step_end(outcome, a, a.task.run_id in self._cancelled))
        self._outbox.append(outcome)
        if self._reporter is None or self._reporter.done():
            self._reporter = asyncio.get_running_loop().create_task(self._report())

    async def cancel(self, run_id: str) -> int:
        """Stop this pool's running steps of ``run_id`` at their next await (an LLM call awaited is abandoned);
        steps of it handed over later never start. Their outcomes are reported (the queue fences them out),
        so the dispatcher's in-flight counts go down. Returns how many were running."""
        self._cancelled[run_id] = None
        while len(self._cancelled) > _CANCELLED_KEPT:
            del self._cancelled[next(iter(self._cancelled))]
        prefix = f"{run_id}:"
        # Begun: cancelled at their next await. Not begun yet: they see the run stopped as they begin.
        stopping = [t for tid, t in self._running.items() if tid.startswith(prefix) and (t is None or not t.done())]
        for t in stopping:
            if t is not None:
                t.cancel()
        fire(self._gateway.cancel_run(run_id=run_id))  # and their LLM requests there are aborted
        if stopping:
            _log.info("pool.cancelled", owner=self.owner, run_id=run_id, steps=len(stopping))
        return len(stopping)

    async def _recall(self, user_id: str, batch: list[Assignment]) -> list[str]:
        """Memory for each step's instruction, in one call for the batch (recorded as the runs' sources);
        '' for each if memory is off or down."""
        if self._memory is None or not self._settings.rag_subagents:
            return [""] * len(batch)
        try:
            return await self._memory.step_contexts(
                user_id=user_id, agent=self.agent, steps=[(a.task.instruction, a.task.run_id, a.task.id) for a in batch])
        except Exception as exc:  # memory helps a step; it is not required to run one
            _log.warning("subagent.memory_unavailable", tasks=len(batch), error=str(exc))
            return [""] * len(batch)

    async def _report(self) -> None:
        """Outcomes go to the dispatcher a few ms after the first one, but at most once every ``_gap``: each
        report is a Store transaction (the steps' updates, records, events, the runs' settling), and under
        load fewer, bigger ones cost far less (300 steps: the Store's CPU 6.9 -> 5.1 s, wall 15 -> 12 s)."""
        loop = asyncio.get_running_loop()
        while self._outbox:
            await asyncio.sleep(max(self._interval, self._last_report + self._gap - loop.time()))
            self._last_report = loop.time()
            batch, self._outbox = self._outbox, []
            try:
                await self._dispatcher.report(owner=self.owner, outcomes=batch)
            except Exception as exc:  # dispatcher restarting: keep the outcomes and try again
                _log.warning("pool.report_failed", owner=self.owner, error=str(exc), outcomes=len(batch))
                self._outbox = batch + self._outbox
                await asyncio.sleep(0.5)
                continue
            for o in batch:
                self._running.pop(o.task_id, None)
            self.completed += len(batch)

    async def _renew_leases(self) -> None:
        period = self._settings.lease_s / 3
        while True:
            await asyncio.sleep(period)
            ids = list(self._running)
            if ids:
                try:
                    await self._store.renew_leases(task_ids=ids, lease_s=self._settings.lease_s)
                except Exception as exc:
                    _log.warning("pool.renew_failed", owner=self.owner, error=str(exc))

    async def configure(self, settings: Settings) -> None:
        """New limits (turns, tool calls per turn, allowed link hosts) for the sub-agents started from now on."""
        self._settings = settings

    async def watch(self) -> None:
        """Never returns while the pool lives: the dispatcher awaits it to learn of a death."""
        if self._forever is None:
            self._forever = asyncio.get_running_loop().create_future()
        await self._forever

    async def stats(self) -> dict[str, Any]:
        """What the pool holds: its type and owner, sub-agents in flight and completed."""
        return {"agent": self.agent, "owner": self.owner, "in_flight": len(self._running), "completed": self.completed}

    async def ping(self) -> bool:
        return True


ActorSubAgentPool = actor_class(SubAgentPool)  # what Ray runs (see actors.runtime.boot)
