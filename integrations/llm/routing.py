"""The gateway's side of several endpoints: leases on their slots, requests moved off a failing one,
and the health checks that take endpoints out and put them back (plain code, tested without Ray).

The slot bookkeeping and the choice of endpoint are :mod:`integrations.llm.endpoints`; this module
adds the I/O: a request that fails because its endpoint is gone goes to another endpoint that is up
(no retry spent: the step that asked never sees it), and with several endpoints a loop checks each
one every ``llm_health_interval_s`` (and at once after a failure) with a cheap request, the server's
model list.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from core.chat_schemas import Priority
from core.errors import LLMError
from core.llm_schemas import LLMEndpointView
from integrations.llm.backend import Backend, probe, redact_url
from integrations.llm.endpoints import Endpoint, Endpoints, fails_endpoint

_log = structlog.get_logger("maos.gateway")
BUSY_GRACE_S = 30.0  # a server busy with our requests that was active this recently counts as up
PROBE_TIMEOUT_S = 1.0
_T = TypeVar("_T")


@dataclasses.dataclass
class Lease:
    """The endpoint slot a request holds; it moves when the endpoint fails under it."""

    ep: Endpoint | None


class Router:
    """One gateway's endpoints (``shares``: URL and this gateway's slots there) on ``backend``'s
    provider and models."""

    def __init__(self, shares: list[tuple[str, int]], backend: Backend, interval_s: float) -> None:
        self.endpoints = Endpoints(shares)
        self.backend = backend
        self.interval_s = interval_s
        self._watcher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def configure(self, shares: list[tuple[str, int]], backend: Backend, interval_s: float) -> None:
        self.backend, self.interval_s = backend, interval_s
        self.endpoints.configure(shares)
        self._wake.set()

    def at(self, ep: Endpoint) -> Backend:
        """The backend with ``ep``'s URL."""
        b = self.backend
        return b if ep.url == b.base_url else dataclasses.replace(b, base_url=ep.url)

    async def acquire(self, priority: Priority) -> Lease:
        self.watch()
        return Lease(await self.endpoints.acquire(priority))

    def release(self, lease: Lease) -> None:
        if lease.ep is not None:
            self.endpoints.release(lease.ep)
            lease.ep = None

    async def failover(self, lease: Lease, exc: LLMError, priority: Priority) -> bool:
        """After ``exc`` on the lease's endpoint: when the endpoint itself failed (refused, unreachable,
        timed out) it is taken out, and when another is up the lease moves there (True)."""
        ep = lease.ep
        if ep is None or not fails_endpoint(exc):
            return False
        self.down(ep, str(exc))
        if not self.endpoints.others_up(ep):
            return False
        self.release(lease)
        lease.ep = await self.endpoints.acquire(priority)
        _log.info("gateway.rerouted", from_url=redact_url(ep.url), to_url=redact_url(lease.ep.url))
        return True

    async def run(self, priority: Priority, lease: Lease, call: Callable[[Backend], Awaitable[_T]]) -> _T:
        """``call`` on the lease's endpoint, moved to another where the endpoint fails (not a retry)."""
        while True:
            ep = lease.ep
            assert ep is not None
            try:
                out = await call(self.at(ep))
            except LLMError as exc:
                if await self.failover(lease, exc, priority):
                    continue
                raise
            self.answered(ep)
            return out

    def answered(self, ep: Endpoint) -> None:
        """``ep`` answered a request (or sent text): it is up."""
        ep.last_activity = time.monotonic()
        if self.endpoints.mark_up(ep):
            _log.info("gateway.endpoint_up", url=redact_url(ep.url), by="request")

    def touch(self, url: str) -> None:
        """The endpoint at ``url`` sent text just now (a busy one-request server is not down)."""
        for ep in self.endpoints.all:
            if ep.url == url:
                ep.last_activity = time.monotonic()

    def down(self, ep: Endpoint, error: str) -> None:
        error = error.replace(ep.url, redact_url(ep.url))  # shown and logged: no credentials
        if self.endpoints.mark_down(ep, error):
            _log.warning("gateway.endpoint_down", url=redact_url(ep.url), error=error[:200])
        self._wake.set()  # check now: a timeout on a live server comes back at once

    def watch(self) -> None:
        """Start the health checks of several endpoints (one endpoint needs none: its requests tell)."""
        if len(self.endpoints.all) > 1 and (self._watcher is None or self._watcher.done()):
            self._watcher = asyncio.get_running_loop().create_task(self._watch_loop())

    async def _watch_loop(self) -> None:
        while len(self.endpoints.all) > 1:
            self._wake.clear()
            await self.check_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)

    async def check_all(self) -> None:
        await asyncio.gather(*(self._check(ep) for ep in list(self.endpoints.all)))

    async def _check(self, ep: Endpoint) -> None:
        """One cheap request (the model list): up when it answers; down when it does not and is not busy
        with our requests (a one-request server answers nothing else while it works on one)."""
        b = self.backend
        models = await probe(ep.url, b.provider, PROBE_TIMEOUT_S, b.api_key if b.provider != "ollama" else None)
        if models is not None:
            model = b.worker_model if any(m in (b.worker_model, f"{b.worker_model}:latest") for m in models) else None
            if self.endpoints.mark_up(ep, model):
                _log.info("gateway.endpoint_up", url=redact_url(ep.url), by="health_check")
        elif not (ep.in_flight > 0 and time.monotonic() - ep.last_activity < BUSY_GRACE_S):
            if self.endpoints.mark_down(ep, f"no answer to a health check at {redact_url(ep.url)}"):
                _log.warning("gateway.endpoint_down", url=redact_url(ep.url), error="health check")

    def views(self) -> list[LLMEndpointView]:
        """Each endpoint's state, its URL redacted (safe to show)."""
        return [v.model_copy(update={"url": redact_url(v.url)}) for v in self.endpoints.views()]

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
