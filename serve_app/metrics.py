"""Prometheus metrics of the HTTP app: request timings, plus runtime gauges read at scrape time."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

from core.schemas import AgentPoolView


class HttpMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Histogram(
            "maos_http_request_seconds", "HTTP request time until the response starts.",
            ["method", "route", "status"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self._tasks = Gauge("maos_tasks", "Tasks in the queue by state.", ["status"], registry=self.registry)
        self._in_flight = Gauge("maos_subagents_in_flight", "Sub-agents running, by type.", ["agent"],
                                registry=self.registry)
        self._queued = Gauge("maos_tasks_queued", "Tasks waiting, by type.", ["agent"], registry=self.registry)
        self._done = Gauge("maos_tasks_done_last_minute", "Tasks finished in the last 60 s, by type.", ["agent"],
                           registry=self.registry)
        self._llm = Gauge("maos_llm_requests", "LLM requests at the server (in_flight) or waiting for a slot.",
                          ["state"], registry=self.registry)
        self._llm_up = Gauge("maos_llm_reachable", "1 when the LLM server answers.", registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).observe(seconds)

    def render(self, queue: dict[str, int], pools: list[AgentPoolView], llm: dict[str, Any]) -> bytes:
        for status in ("pending", "ready", "running", "failed", "done", "dead", "blocked", "waiting"):
            self._tasks.labels(status).set(queue.get(status, 0))
        for p in pools:
            self._in_flight.labels(p.agent).set(p.in_flight)
            self._queued.labels(p.agent).set(p.queued)
            self._done.labels(p.agent).set(p.done_last_minute)
        self._llm.labels("in_flight").set(llm["in_flight"])
        self._llm.labels("waiting").set(llm["waiting"])
        self._llm_up.set(1 if llm["reachable"] else 0)
        return generate_latest(self.registry)


class TimingMiddleware:
    """Pure ASGI (streamed responses pass through untouched): time until the response starts,
    labelled by the route's template, never the raw path."""

    def __init__(self, app: Any, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path", "other")
                self.metrics.observe(scope["method"], route, message["status"], time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, timed_send)
