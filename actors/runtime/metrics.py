"""The runtime's figures in Ray's own metrics (``ray.util.metrics``), next to the app's ``/metrics``.

Each process records its own; Ray's metrics agent on every node exports them in Prometheus text on
the node's metrics export port (``ray start --metrics-export-port``; what Ray's Grafana dashboards
and a Prometheus server scrape), with Ray's ``ray_`` prefix: ``ray_maos_subagents_in_flight`` and
so on. Recording is a no-op in a process without Ray (unit tests, tools).

- ``maos_subagents_in_flight{agent, node, pool}``: sub-agents at work in a pool (a gauge).
- ``maos_steps{agent, node, outcome}``: steps ended in a pool, by what became of them
  (done, retried, waiting, dead, cancelled).
- ``maos_queue_ready{agent}``: steps ready in the queue, waiting for room (the dispatcher's view).
- ``maos_llm_calls{endpoint, ok}``, ``maos_llm_latency_ms{endpoint}``,
  ``maos_llm_tokens{endpoint, direction}``: the gateways' LLM calls, as each completes.
"""

from __future__ import annotations

import functools
from typing import Literal

import ray

StepEnd = Literal["done", "retried", "waiting", "dead", "cancelled"]
_LATENCY_MS = [25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0, 120000.0]


class _Figures:
    def __init__(self) -> None:
        from ray.util import metrics

        self.node = ray.get_runtime_context().get_node_id()
        self.in_flight = metrics.Gauge("maos_subagents_in_flight", "Sub-agents at work in a pool.",
                                       tag_keys=("agent", "node", "pool"))
        self.steps = metrics.Counter("maos_steps", "Steps ended in a pool, by what became of them.",
                                     tag_keys=("agent", "node", "outcome"))
        self.ready = metrics.Gauge("maos_queue_ready", "Steps ready in the queue, waiting for room.",
                                   tag_keys=("agent",))
        self.llm_calls = metrics.Counter("maos_llm_calls", "LLM calls completed, by endpoint.",
                                         tag_keys=("endpoint", "ok"))
        self.llm_latency = metrics.Histogram("maos_llm_latency_ms", "LLM call latency (queued included), ms.",
                                             boundaries=_LATENCY_MS, tag_keys=("endpoint",))
        self.llm_tokens = metrics.Counter("maos_llm_tokens", "LLM tokens, by endpoint and direction.",
                                          tag_keys=("endpoint", "direction"))


@functools.cache
def _made() -> _Figures:
    return _Figures()


def exporting() -> bool:
    """Whether figures recorded here reach Ray's metrics (this process runs in Ray)."""
    return ray.is_initialized()


def _figures() -> _Figures | None:
    return _made() if exporting() else None


def subagents_in_flight(agent: str, pool: str, n: int) -> None:
    if (f := _figures()) is not None:
        f.in_flight.set(n, tags={"agent": agent, "node": f.node, "pool": pool})


def step_ended(agent: str, outcome: StepEnd) -> None:
    if (f := _figures()) is not None:
        f.steps.inc(1, tags={"agent": agent, "node": f.node, "outcome": outcome})


def queue_ready(by_agent: dict[str, int]) -> None:
    """Ready steps per agent type (every type the app has, 0 included, so a drained queue reads 0)."""
    if (f := _figures()) is not None:
        for agent, n in by_agent.items():
            f.ready.set(n, tags={"agent": agent})


def llm_call(endpoint: str, ok: bool, latency_ms: float, tokens_in: int, tokens_out: int) -> None:
    if (f := _figures()) is not None:
        f.llm_calls.inc(1, tags={"endpoint": endpoint, "ok": "true" if ok else "false"})
        f.llm_latency.observe(latency_ms, tags={"endpoint": endpoint})
        if tokens_in:
            f.llm_tokens.inc(tokens_in, tags={"endpoint": endpoint, "direction": "in"})
        if tokens_out:
            f.llm_tokens.inc(tokens_out, tags={"endpoint": endpoint, "direction": "out"})


