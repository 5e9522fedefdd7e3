"""Typed lifecycle events: structlog and Prometheus subscribe here. No bodies, no addresses."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog
from prometheus_client import Counter

from core.schemas import TaskEvent

_log = structlog.get_logger("maos.tasks")
TASK_EVENTS = Counter("maos_task_events_total", "Task lifecycle changes", ["event", "agent"])
_subscribers: list[Callable[[TaskEvent], None]] = []


def subscribe(fn: Callable[[TaskEvent], None]) -> Callable[[], None]:
    """Call ``fn`` for every published event; returns a function that unsubscribes."""
    _subscribers.append(fn)
    return lambda: _subscribers.remove(fn)


def publish(events: Iterable[TaskEvent]) -> None:
    for ev in events:
        TASK_EVENTS.labels(ev.event, ev.agent).inc()
        _log.info(
            "task." + ev.event, run_id=ev.run_id, task_id=ev.task_id, agent=ev.agent, attempt=ev.attempt,
            error=ev.error,
        )
        for fn in _subscribers:
            fn(ev)
