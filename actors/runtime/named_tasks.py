"""An actor's own work as tasks of its own, named, so Ray's dashboard lists each piece of it.

A pool runs hundreds of sub-agents as coroutines in one process; to Ray that is one actor. Started
through :func:`own_tasks`, each is instead an actor task the pool submits to itself
(``self_handle.step.options(name="email run-1 s3").remote(task_id)``): the dashboard, the state
API (``ray list tasks``, ``ray.util.state.list_tasks``) and ``ray summary tasks`` list it by that
name, with its node, its state and its duration, and its row links to the pool's log. It runs on
the actor's own event loop like any call of an async actor, so it shares the pool's state (its
batching of LLM calls, its leases, its outbox): only the small arguments cross Ray.

Outside a Ray actor (unit tests, a pool built by hand) the same call starts an asyncio task.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import ray

# Ray shows a task's name in tables; past this many characters it only makes rows wider.
_NAME_MAX = 120


def task_name(*parts: str) -> str:
    """A task's name from its parts, space-separated (``"email 3f9a… s3"``): each part's spaces become
    ``_`` so the parts stay apart, and the whole is cut to a length a table shows."""
    name = " ".join("_".join(p.split()) or "-" for p in parts)
    return name if len(name) <= _NAME_MAX else name[: _NAME_MAX - 1] + "…"


class OwnTasks(Protocol):
    """Starts ``obj.method(*args)`` as a task of its own named ``name``; returns at once."""

    def start(self, method: str, name: str, *args: Any) -> None: ...


class LocalTasks:
    """In-process: an asyncio task on the running loop (kept until done: a task nobody holds may vanish)."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, method: str, name: str, *args: Any) -> None:
        task = asyncio.get_running_loop().create_task(getattr(self._obj, method)(*args), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class RayTasks:
    """In a Ray actor: a call of the actor's own handle, named. The result is not awaited: the method
    reports what it did itself, and catches its own errors."""

    def __init__(self) -> None:
        self._me: Any = None

    def start(self, method: str, name: str, *args: Any) -> None:
        if self._me is None:
            self._me = ray.get_runtime_context().current_actor
        getattr(self._me, method).options(name=name).remote(*args)


def own_tasks(obj: Any) -> OwnTasks:
    """How ``obj`` (an actor's instance) starts its own named tasks: through Ray when it runs as a Ray
    actor, else as asyncio tasks."""
    if ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None:
        return RayTasks()
    return LocalTasks(obj)
