"""Typed lifecycle events: structlog and Prometheus subscribe here. No bodies, no addresses."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Counter

from core.schemas import TaskEventKind

_log = structlog.get_logger("maos.tasks")


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One task lifecycle change, published in the Store's process. It goes nowhere else (the run's
    event log carries it as a ``RunEvent``), and there is one for every transition: a plain class,
    ten times cheaper to build than a pydantic model."""

    event: TaskEventKind
    run_id: str
    task_id: str
    agent: str
    attempt: int
    at: float
    error: str | None = None  # for failed/dead: why (never a body)
    node: str | None = None  # for running: the Ray node of the pool it runs in (8 hex digits)


TASK_EVENTS = Counter("maos_task_events_total", "Task lifecycle changes", ["event", "agent"])
_subscribers: list[Callable[[TaskEvent], None]] = []


def subscribe(fn: Callable[[TaskEvent], None]) -> Callable[[], None]:
    """Call ``fn`` for every published event; returns a function that unsubscribes."""
    _subscribers.append(fn)
    return lambda: _subscribers.remove(fn)


@functools.cache
def _counter(event: str, agent: str) -> Any:
    return TASK_EVENTS.labels(event, agent)


def publish(events: Iterable[TaskEvent]) -> None:
    bound = _log.bind()  # the configured logger, looked up once rather than per event
    for ev in events:
        _counter(ev.event, ev.agent).inc()
        bound.info(
            "task." + ev.event, run_id=ev.run_id, task_id=ev.task_id, agent=ev.agent, attempt=ev.attempt,
            error=ev.error,
        )
        for fn in _subscribers:
            fn(ev)
