"""The LLM gateway actor: owns concurrency toward the LLM servers.

At most each endpoint's slots of requests are at it; the rest wait here, interactive requests (chat,
planning, summaries) ahead of background sub-agent work. Which endpoint a request goes to, and which
are up, is :mod:`integrations.llm.endpoints`: an endpoint that refuses or times out is taken out and
the request goes to another one, with no retry spent; a health check brings it back. Transient
errors are retried with exponential backoff. Every call's model, tokens, latency and the form of its
tool calls (native, or text a local model wrote: see ``integrations/llm/toolcalls.py``) go to
``agent_runs``. Once, as the app starts (its first health check), the gateway asks the model whether
it calls tools at all (:mod:`integrations.llm.toolcheck`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator
from functools import partial
from types import ModuleType
from typing import Any

import structlog

from actors.runtime import metrics
from actors.runtime.apis import StoreApi
from actors.runtime.boot import actor_class
from actors.runtime.handles import Handle
from actors.runtime.typed import typed
from core.chat_schemas import ChatRequest, ChatResponse, StreamChunk
from core.errors import LLMError, LLMUnavailable
from core.schemas import ToolCallFormat
from core.settings import Settings, apply_litellm_environment
from integrations.llm.backend import Backend, redact_url
from integrations.llm.endpoints import share_slots, wait_reason
from integrations.llm.routing import Lease, Router
from integrations.llm.toolcalls import assistant_reply
from integrations.llm.toolcheck import ToolCheck

_log = structlog.get_logger("maos.gateway")
_TOKEN_FLUSH_S = 0.02  # live reply text goes to the Store at most this often (batched over all streams)
_REPLY_GAP_S = 0.02  # a batch's replies go back to its pool at most this often (the first one at once)
ChatReply = tuple[int, ChatResponse | LLMError]  # (index in the batch, the reply or why there is none)


class LLMGateway:
    """Plain class; the runtime makes it an actor (``num_cpus=0``: it waits on I/O)."""

    @staticmethod
    def prepare_process(settings: Settings, backend: Backend, *rest: object) -> ModuleType:
        """The LLM client module, imported and warmed up: importing litellm takes 2-3 s, so the runtime
        starts it early. Its HTTP pool is sized then, for the whole app's slots (this gateway may be
        resized up to them)."""
        apply_litellm_environment(backend.base_url if backend.provider == "ollama" else None,
                                  settings.total_llm_slots)
        from integrations.llm import client  # litellm is imported here and nowhere else

        client.warm_up(backend)

        return client

    def __init__(self, settings: Settings, backend: Backend, store: Handle | None, slots: int | None = None,
                 replica: int = 0) -> None:
        self._client = self.prepare_process(settings, backend)
        self._settings = settings
        self._backend = _keyed(backend, settings)
        self._store = typed(store, StoreApi) if store is not None else None
        self._replica = replica
        self._router = Router(self._shares(settings, self._backend, slots), self._backend,
                              settings.llm_health_interval_s)
        self._records: list[dict[str, Any]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self._tokens: list[tuple[str, str, str]] = []  # (run id, phase, text) waiting for the Store
        self._token_lock = asyncio.Lock()
        self._token_flusher: asyncio.Task[None] | None = None
        self._by_run: dict[str, set[asyncio.Task[None]]] = {}  # sub-agents' requests in flight, by run
        self._tools = ToolCheck()
        self._formats_seen: set[tuple[str, ToolCallFormat]] = set()

    def _shares(self, settings: Settings, backend: Backend, slots: int | None) -> list[tuple[str, int]]:
        """This gateway's endpoints and slots: the listed endpoints' slots split among the replicas, or
        the one server of ``backend`` with ``slots`` (the wiring's share of ``llm_slots``)."""
        listed = settings.endpoint_list
        if not listed:
            return [(backend.base_url, slots if slots is not None else settings.llm_slots)]
        return share_slots(listed, settings.gateway_replicas, self._replica)

    # --- requests ------------------------------------------------------------------------------

    async def chat(self, req: ChatRequest) -> ChatResponse:
        queued_at = time.perf_counter()
        lease = await self._router.acquire(req.priority)
        queued_ms = (time.perf_counter() - queued_at) * 1000
        try:
            resp = await self._with_retries(req, lease)
            endpoint = _url(lease)
        except LLMError as exc:
            self._record(req, (0, 0), queued_ms, (time.perf_counter() - queued_at) * 1000, str(exc), endpoint=_url(lease))
            raise
        finally:
            self._router.release(lease)
        resp = resp.model_copy(update={"queued_ms": queued_ms, "latency_ms": (time.perf_counter() - queued_at) * 1000})
        self._record(req, (resp.tokens_in, resp.tokens_out), queued_ms, resp.latency_ms, None, resp.tool_call_format,
                     endpoint=endpoint)
        return resp

    async def cancel_run(self, run_id: str) -> int:
        """Abort the run's sub-agent requests in flight here (the HTTP request to the LLM server is
        closed; each ends as an LLMError to its step, which its pool has cancelled already). Returns
        how many were aborted."""
        tasks = [t for t in self._by_run.pop(run_id, set()) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            _log.info("gateway.run_cancelled", run_id=run_id, requests=len(tasks))
        return len(tasks)

    def _forget(self, run_id: str, task: asyncio.Task[None]) -> None:
        left = self._by_run.get(run_id)
        if left is not None:
            left.discard(task)
            if not left:
                del self._by_run[run_id]

    async def chat_many(self, reqs: list[ChatRequest], gap_s: float = _REPLY_GAP_S) -> AsyncIterator[list[ChatReply]]:
        """Many sub-agents' chats in one call (a pool's, gathered by ``BatchedChat``): each reply, or the
        LLMError it ended in, comes back as ``(index, value)`` once ready; the first at once, then what
        is ready at most every ``gap_s`` (each item of the stream is a message between processes)."""
        loop = asyncio.get_running_loop()
        ready: list[ChatReply] = []
        arrived = asyncio.Event()

        async def one(i: int, req: ChatRequest) -> None:
            value: ChatResponse | LLMError
            try:
                value = await self.chat(req)
            except LLMError as exc:
                value = exc
            except asyncio.CancelledError:  # its run was cancelled (cancel_run): the request was aborted
                value = LLMError("the run was cancelled: its request to the LLM server was aborted")
            except Exception as exc:  # a bug fails its own request, not the others in the batch
                _log.exception("gateway.chat_crashed", run_id=req.run_id, task_id=req.task_id)
                value = LLMError(f"LLM gateway error: {exc!r}")
            ready.append((i, value))
            arrived.set()

        tasks = [loop.create_task(one(i, r)) for i, r in enumerate(reqs)]
        for req, task in zip(reqs, tasks, strict=True):
            if req.run_id is not None:
                self._by_run.setdefault(req.run_id, set()).add(task)
                task.add_done_callback(partial(self._forget, req.run_id))
        left, last = len(reqs), -gap_s
        try:
            while left:
                await arrived.wait()
                await asyncio.sleep(max(0.0, last + gap_s - loop.time()))
                arrived.clear()
                out = ready[:]
                del ready[:]
                left -= len(out)
                last = loop.time()
                yield out
        finally:  # the caller went away: its requests stop too
            for t in tasks:
                t.cancel()

    async def embed(self, texts: list[str], model: str) -> list[list[float]]:
        """Embeddings from the LLM servers (the Memory actor's Ollama embedder); background priority,
        routed like every other request."""
        lease = await self._router.acquire("background")
        try:
            return await self._router.run("background", lease, lambda b: self._client.embed(  # type: ignore[no-any-return]
                b, texts, model, self._settings.llm_timeout_s))
        finally:
            self._router.release(lease)

    async def _with_retries(self, req: ChatRequest, lease: Lease) -> ChatResponse:
        delay = self._settings.llm_retry_backoff_s
        streamed = req.stream_phase is not None and req.run_id is not None and self._store is not None
        for attempt in range(self._settings.llm_retries + 1):
            try:
                if streamed:
                    return await self._router.run(req.priority, lease, partial(self._streamed, req))
                return await self._router.run(req.priority, lease, partial(self._complete, req))
            except LLMError as exc:
                if not exc.transient or attempt == self._settings.llm_retries:
                    raise
                delay = await self._back_off(req, attempt, exc, delay)
        raise LLMUnavailable("unreachable")  # pragma: no cover - loop always returns or raises

    async def _complete(self, req: ChatRequest, backend: Backend) -> ChatResponse:
        return await self._client.complete(backend, req, self._settings.llm_timeout_s)  # type: ignore[no-any-return]

    async def _back_off(self, req: ChatRequest, attempt: int, exc: LLMError, delay: float) -> float:
        """Wait before retrying a transient error (jittered); returns the next delay."""
        _log.warning("llm.retry", attempt=attempt + 1, error=str(exc), run_id=req.run_id, task_id=req.task_id)
        await asyncio.sleep(delay * (0.5 + self._rng.random()))
        return delay * 2

    async def _streamed(self, req: ChatRequest, backend: Backend) -> ChatResponse:
        """A call whose text goes into the run's event log as it is written (the first chunk at once,
        then batched with every other stream's every ``_TOKEN_FLUSH_S``); returns the whole reply once
        all of it is committed there. A transient error before the first chunk is retried by the caller;
        one after it is not (the text is already shown)."""
        assert req.run_id is not None and req.stream_phase is not None
        started = time.perf_counter()
        parts: list[str] = []
        usage = (0, 0)
        try:
            async for delta in self._client.stream(backend, req, self._settings.llm_timeout_s):
                if not isinstance(delta, str):  # the reply's token counts, after its text
                    usage = delta
                    continue
                parts.append(delta)
                self._router.touch(backend.base_url)
                self._tokens.append((req.run_id, req.stream_phase, delta))
                if self._token_flusher is None or self._token_flusher.done():
                    self._token_flusher = asyncio.get_running_loop().create_task(self._flush_tokens_soon())
        except LLMError as exc:
            if parts:  # not retried here: the text so far is already shown
                raise type(exc)(f"{exc} (after part of the reply was streamed)", False) from None
            raise
        finally:
            await self._flush_tokens()
        message, call_format = assistant_reply("".join(parts), None, req.tools)  # calls written as text
        return ChatResponse(message=message, tool_call_format=call_format,
                            model=backend.model_for(req.role), tokens_in=usage[0], tokens_out=usage[1],
                            latency_ms=(time.perf_counter() - started) * 1000)

    async def _flush_tokens_soon(self) -> None:
        while self._tokens:
            await self._flush_tokens()
            await asyncio.sleep(_TOKEN_FLUSH_S)

    async def _flush_tokens(self) -> None:
        """Send what is buffered; returns once everything buffered before the call is committed."""
        assert self._store is not None
        async with self._token_lock:
            batch, self._tokens = self._tokens, []
            if not batch:
                return
            merged: list[tuple[str, str, str]] = []  # consecutive pieces of one stream become one event
            for run_id, phase, text in batch:
                if merged and merged[-1][0] == run_id and merged[-1][1] == phase:
                    merged[-1] = (run_id, phase, merged[-1][2] + text)
                else:
                    merged.append((run_id, phase, text))
            try:
                await self._store.append_tokens(merged)
            except Exception as exc:  # the reply still returns whole; only its live view has a gap
                _log.warning("gateway.tokens_not_recorded", error=str(exc), chunks=len(merged))

    async def stream(self, req: ChatRequest, flush_s: float = 0.05) -> AsyncIterator[StreamChunk]:
        """Stream text in coalesced chunks: the first delta at once, then every ``flush_s``.

        Before the first delta, a transient error is retried like ``chat`` and a failing endpoint is
        left for another; after it, the error is raised (the caller has shown part of the text)."""
        queued_at = time.perf_counter()
        lease = await self._router.acquire(req.priority)
        queued_ms = (time.perf_counter() - queued_at) * 1000
        buf: list[str] = []
        last = 0.0
        first = True
        error: str | None = None
        usage = (0, 0)
        delay = self._settings.llm_retry_backoff_s
        attempt = 0
        try:
            while True:
                ep = lease.ep
                assert ep is not None
                try:
                    async for delta in self._client.stream(self._router.at(ep), req, self._settings.llm_timeout_s):
                        if not isinstance(delta, str):  # the reply's token counts, after its text
                            usage = delta
                            continue
                        buf.append(delta)
                        ep.last_activity = time.monotonic()
                        now = time.perf_counter()
                        if first or now - last >= flush_s:
                            yield StreamChunk(text="".join(buf))
                            buf, last, first = [], now, False
                    break
                except LLMError as exc:
                    if first and await self._router.failover(lease, exc, req.priority):
                        continue
                    if not first or not exc.transient or attempt == self._settings.llm_retries:
                        error = str(exc)
                        raise
                    delay = await self._back_off(req, attempt, exc, delay)
                    attempt += 1
            yield StreamChunk(text="".join(buf), done=True)
        finally:
            endpoint = _url(lease)
            self._router.release(lease)
            self._record(req, usage, queued_ms, (time.perf_counter() - queued_at) * 1000, error, endpoint=endpoint)

    def _row(self, req: ChatRequest, usage: tuple[int, int], queued_ms: float, latency_ms: float,
             error: str | None, call_format: ToolCallFormat | None = None) -> dict[str, Any]:
        return {
            "run_id": req.run_id, "task_id": req.task_id, "agent": req.agent,
            "model": self._backend.model_for(req.role), "tokens_in": usage[0], "tokens_out": usage[1],
            "latency_ms": latency_ms, "queued_ms": queued_ms, "ok": error is None, "error": error,
            "created_at": time.time(), "tool_call_format": call_format,
        }

    def _record(self, req: ChatRequest, usage: tuple[int, int], queued_ms: float, latency_ms: float,
                error: str | None, call_format: ToolCallFormat | None = None, endpoint: str = "") -> None:
        """One row of ``agent_runs`` (``usage``: tokens in and out), written with others shortly; the first
        time a model writes its tool calls in a form, that is logged too. Ray's metrics count it by endpoint."""
        metrics.llm_call(endpoint, error is None, latency_ms, usage[0], usage[1])
        model = self._backend.model_for(req.role)
        if call_format is not None and (model, call_format) not in self._formats_seen:
            self._formats_seen.add((model, call_format))
            _log.info("gateway.tool_call_format", model=model, format=call_format)
        if self._store is None:
            return
        self._records.append(self._row(req, usage, queued_ms, latency_ms, error, call_format))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.get_running_loop().create_task(self._flush_records())

    async def _flush_records(self) -> None:
        assert self._store is not None
        while self._records:
            await asyncio.sleep(0.05)
            batch, self._records = self._records, []
            try:
                await self._store.record_llm_calls(batch)
            except Exception as exc:  # accounting must never break a call; keep and retry
                _log.warning("gateway.record_failed", error=str(exc), rows=len(batch))
                self._records = batch + self._records
                await asyncio.sleep(1.0)

    async def configure(self, settings: Settings, backend: Backend, slots: int) -> None:
        """Apply new settings: another server, model or endpoints, or a different number of slots."""
        apply_litellm_environment(backend.base_url if backend.provider == "ollama" else None)
        self._settings = settings
        self._backend = _keyed(backend, settings if settings.llm_api_key is not None else self._settings)
        self._router.configure(self._shares(settings, self._backend, slots), self._backend,
                               settings.llm_health_interval_s)
        _log.info("gateway.configured", provider=backend.provider, slots=self._router.endpoints.size,
                  endpoints=len(self._router.endpoints.all))

    async def health(self) -> dict[str, Any]:
        """The backend, whether it answers, the requests here, each endpoint's state and why work waits."""
        self._tools.ensure(self._backend.base_url, self._backend.worker_model, self._probe_tools,
                           self._settings.llm_timeout_s)
        self._router.watch()
        await self._router.check_all()
        views = self._router.views()
        waiting = self._router.endpoints.waiting
        found = self._tools.found
        return {
            "provider": self._backend.provider, "base_url": self._backend.base_url,
            "models": {"planner": self._backend.planner_model, "worker": self._backend.worker_model},
            "reachable": any(v.up for v in views), "in_flight": self._router.endpoints.in_flight, "waiting": waiting,
            "slots": self._router.endpoints.size, "endpoints": [v.model_dump() for v in views],
            "wait_reason": wait_reason(views, waiting),
            "tools": found.model_dump() if found is not None else None,
        }

    async def _probe_tools(self, req: ChatRequest, timeout_s: float) -> ChatResponse:
        """The tool check's request: background priority, routed, not an ``agent_runs`` row (no run asked)."""
        lease = await self._router.acquire("background")
        try:
            return await self._router.run("background", lease, lambda b: self._client.complete(  # type: ignore[no-any-return]
                b, req, timeout_s))
        finally:
            self._router.release(lease)

    async def ping(self) -> bool:
        return True


ActorLLMGateway = actor_class(LLMGateway)  # what Ray runs (see actors.runtime.boot)


def _keyed(backend: Backend, settings: Settings) -> Backend:
    """``backend`` with the API key this process holds (a backend crosses processes without it)."""
    if backend.api_key is not None or settings.llm_api_key is None:
        return backend
    return dataclasses.replace(backend, api_key=settings.llm_api_key.get_secret_value())


def _url(lease: Lease) -> str:
    """The endpoint a lease holds, as figures name it (credentials left out)."""
    return redact_url(lease.ep.url) if lease.ep is not None else ""
