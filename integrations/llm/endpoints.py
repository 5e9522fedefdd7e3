"""Routing LLM requests over several endpoints (plain code: the gateway actor holds one ``Endpoints``).

Each request takes a slot on an endpoint that is up and has one free, the one with the largest share
of its slots free (so a 4-slot and a 2-slot machine fill evenly); when none has, it waits, interactive
requests (chat, planning) ahead of background work, then by arrival. An endpoint that refuses a
connection or times out is taken out (``mark_down``): its request goes to another endpoint, and the
step that asked never sees the failure. A health check (:func:`integrations.llm.backend.probe`) or a
request that succeeds there brings it back (``mark_up``). When every endpoint is down, requests go
to them anyway: one server's outage then behaves as it did with a single server (the gateway's
retries decide), and the first that answers is back in.

Several gateway replicas each hold a share of every endpoint's slots (:func:`share_slots`): an
endpoint never gets more requests than its slots from all of them together.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass
from typing import Any

from core.chat_schemas import Priority
from core.errors import LLMError, LLMUnavailable
from core.llm_schemas import LLMEndpoint, LLMEndpointView, format_endpoints, parse_endpoints
from integrations.llm.backend import redact_url

_RANK: dict[Priority, int] = {"interactive": 0, "background": 1}


@dataclass
class Endpoint:
    """One endpoint's state in this gateway."""

    url: str
    slots: int  # this gateway's share
    in_flight: int = 0
    up: bool = True
    last_error: str | None = None
    model: str | None = None
    requests: int = 0  # sent here, all time
    last_activity: float = 0.0  # monotonic: a request sent, or an answer received

    @property
    def free(self) -> int:
        return self.slots - self.in_flight


def share_slots(endpoints: list[LLMEndpoint], replicas: int, replica: int) -> list[tuple[str, int]]:
    """Replica ``replica`` of ``replicas``' slots on each endpoint: the endpoints' slots split evenly,
    remainders handed round so the replicas' totals differ by at most one. A replica left with no slot
    at all (fewer slots than replicas) gets one on the largest endpoint."""
    out: list[tuple[str, int]] = []
    offset = 0
    for e in endpoints:
        extra = 1 if (replica - offset) % replicas < e.slots % replicas else 0
        out.append((e.url, e.slots // replicas + extra))
        offset += e.slots % replicas
    if sum(s for _, s in out) == 0 and out:
        i = max(range(len(endpoints)), key=lambda k: endpoints[k].slots)
        out[i] = (out[i][0], 1)
    return out


def fails_endpoint(exc: LLMError) -> bool:
    """Whether the error says the endpoint itself is gone (refused, unreachable, timed out), rather than
    the request being wrong: such a request is sent to another endpoint."""
    return isinstance(exc, LLMUnavailable) or (exc.transient and "Timeout" in str(exc))


class Endpoints:
    """The endpoints of one gateway and the requests waiting for a slot on one of them."""

    def __init__(self, shares: list[tuple[str, int]]) -> None:
        self.all: list[Endpoint] = [Endpoint(url, slots) for url, slots in shares]
        self._waiters: list[tuple[int, int, asyncio.Future[Endpoint]]] = []
        self._seq = itertools.count()

    # --- slots -------------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

    @property
    def in_flight(self) -> int:
        return sum(e.in_flight for e in self.all)

    @property
    def size(self) -> int:
        return sum(e.slots for e in self.all)

    def choose(self) -> Endpoint | None:
        """The endpoint the next request goes to: up, with a free slot, the largest share free; when
        every endpoint is down, the same among all of them. None: wait."""
        up = [e for e in self.all if e.up]
        pool = up if up else self.all
        free = [e for e in pool if e.free > 0]
        if not free:
            return None
        return max(free, key=lambda e: (e.free / e.slots, -e.requests))

    def _take(self, ep: Endpoint) -> Endpoint:
        ep.in_flight += 1
        ep.requests += 1
        ep.last_activity = time.monotonic()
        return ep

    async def acquire(self, priority: Priority) -> Endpoint:
        """A slot on an endpoint (see :meth:`choose`); give it back with :meth:`release`."""
        if not self.waiting:
            ep = self.choose()
            if ep is not None:
                return self._take(ep)
        fut: asyncio.Future[Endpoint] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (_RANK[priority], next(self._seq), fut))
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())  # handed a slot just as we were cancelled
            raise

    def release(self, ep: Endpoint) -> None:
        ep.in_flight -= 1
        self._serve()

    def _serve(self) -> None:
        """Hand free slots to the waiters, in their order."""
        while self._waiters:
            if self._waiters[0][2].done():  # cancelled while waiting
                heapq.heappop(self._waiters)
                continue
            ep = self.choose()
            if ep is None:
                return
            _, _, fut = heapq.heappop(self._waiters)
            fut.set_result(self._take(ep))

    # --- health ------------------------------------------------------------------------------

    def others_up(self, ep: Endpoint) -> bool:
        """Whether a request that failed on ``ep`` has another endpoint to go to."""
        return any(e.up and e is not ep and e.slots > 0 for e in self.all)

    def mark_down(self, ep: Endpoint, error: str) -> bool:
        """Take ``ep`` out; True when it was up."""
        was = ep.up
        ep.up, ep.last_error = False, error[:300]
        self._serve()  # with every endpoint down, waiters may go to the down ones
        return was

    def mark_up(self, ep: Endpoint, model: str | None = None) -> bool:
        """Put ``ep`` back in; True when it was down."""
        was = not ep.up
        ep.up = True
        ep.last_activity = time.monotonic()
        if model is not None:
            ep.model = model
        self._serve()
        return was

    def configure(self, shares: list[tuple[str, int]]) -> None:
        """New endpoints or slots: an endpoint kept keeps its state; requests at a removed one finish."""
        old = {e.url: e for e in self.all}
        self.all = []
        for url, slots in shares:
            ep = old.get(url) or Endpoint(url, slots)
            ep.slots = slots
            self.all.append(ep)
        self._serve()

    def views(self) -> list[LLMEndpointView]:
        return [LLMEndpointView(url=e.url, slots=e.slots, in_flight=e.in_flight, up=e.up, last_error=e.last_error,
                                model=e.model) for e in self.all]


def merge_views(per_gateway: list[list[LLMEndpointView]]) -> list[LLMEndpointView]:
    """One view per endpoint over the gateway replicas: slots and requests summed; up when any
    replica has it up (each checks it on its own), with the last error one of them saw."""
    merged: dict[str, LLMEndpointView] = {}
    for views in per_gateway:
        for v in views:
            m = merged.get(v.url)
            merged[v.url] = v if m is None else m.model_copy(update={
                "slots": m.slots + v.slots, "in_flight": m.in_flight + v.in_flight, "up": m.up or v.up,
                "last_error": m.last_error or v.last_error, "model": m.model or v.model})
    return list(merged.values())


def llm_endpoints(healths: list[dict[str, Any]]) -> tuple[list[LLMEndpointView], int]:
    """The endpoints over the gateways' ``health`` answers, and the requests waiting in all of them."""
    views = merge_views([[LLMEndpointView.model_validate(e) for e in h.get("endpoints", [])] for h in healths])
    return views, sum(int(h.get("waiting", 0)) for h in healths)


def wait_reason(endpoints: list[LLMEndpointView], waiting: int) -> str | None:
    """Why LLM work waits now, in words (None when it does not): endpoints down, every slot busy."""
    reasons = []
    down = [e for e in endpoints if not e.up]
    if down:
        reasons.append(f"{len(down)} of {len(endpoints)} LLM endpoint{'s' if len(endpoints) > 1 else ''} down")
    live = [e for e in endpoints if e.up] or endpoints
    slots = sum(e.slots for e in live)
    busy = sum(e.in_flight for e in live)
    if slots and busy >= slots:
        reasons.append(f"all {slots} LLM slot{'s' if slots > 1 else ''} busy"
                       + (f", {waiting} request{'s' if waiting > 1 else ''} waiting" if waiting else ""))
    return "; ".join(reasons) or None


def redact_endpoints(text: str, default_slots: int) -> str:
    """``text`` (an endpoint list) as it may be shown: each URL without credentials or query; unchanged
    when none has any (or it does not read as a list)."""
    try:
        listed = parse_endpoints(text, default_slots)
    except ValueError:
        return text
    if all(redact_url(e.url) == e.url for e in listed):
        return text
    return format_endpoints([e.model_copy(update={"url": redact_url(e.url)}) for e in listed])
