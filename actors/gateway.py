"""The LLM gateway actor: owns concurrency toward the LLM server.

At most ``slots`` requests are at the server; the rest wait here, interactive requests (chat,
planning, summaries) ahead of background sub-agent work. Transient errors are retried with
exponential backoff. Every call's model, tokens, latency and the form of its tool calls (native,
or text a local model wrote: see ``integrations/llm/toolcalls.py``) go to ``agent_runs``. Once, as
the app starts (its first health check), the gateway asks the model whether it calls tools at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import random
import time
from collections.abc import AsyncIterator
from functools import partial
from types import ModuleType
from typing import Any

import structlog

from actors.runtime.apis import StoreApi
from actors.runtime.boot import actor_class
from actors.runtime.handles import Handle
from actors.runtime.typed import typed
from core.errors import LLMError, LLMUnavailable
from core.schemas import (
    ChatRequest,
    ChatResponse,
    Priority,
    StreamChunk,
    ToolCallFormat,
    ToolSupport,
)
from core.settings import Settings, apply_litellm_environment
from integrations.llm.backend import (
    Backend,
    probe,
    tool_check_pending,
    tool_probe_request,
    tool_support,
)
from integrations.llm.toolcalls import assistant_reply

_log = structlog.get_logger("maos.gateway")
_RANK: dict[Priority, int] = {"interactive": 0, "background": 1}
_BUSY_GRACE_S = 30.0  # a server busy with our requests that was active this recently counts as up
_TOKEN_FLUSH_S = 0.02  # live reply text goes to the Store at most this often (batched over all streams)
_REPLY_GAP_S = 0.02  # a batch's replies go back to its pool at most this often (the first one at once)
_TOOL_CHECK_RETRY_S = 60.0  # a tool check that failed (server down, timeout) is tried again after this
_TOOL_CHECK_TIMEOUT_S = 120.0
ChatReply = tuple[int, ChatResponse | LLMError]  # (index in the batch, the reply or why there is none)


class PrioritySlots:
    """A semaphore whose waiters are served by priority, then arrival."""

    def __init__(self, slots: int) -> None:
        self.free = slots
        self.size = slots
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

    async def acquire(self, priority: Priority) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (_RANK[priority], next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # we were handed the slot just as we were cancelled
            raise

    def resize(self, slots: int) -> None:
        """Change the number of slots; a shrink takes effect as requests finish."""
        self.free += slots - self.size
        self.size = slots
        while self.free > 0 and any(not f.done() for _, _, f in self._waiters):
            self.free -= 1
            self.release()

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
                return
        self.free += 1


class LLMGateway:
    """Plain class; the runtime makes it an actor (``num_cpus=0``: it waits on I/O)."""

    @staticmethod
    def prepare_process(settings: Settings, backend: Backend, *rest: object) -> ModuleType:
        """The LLM client module, imported and warmed up: importing litellm takes 2-3 s, so the runtime
        starts it early. Its HTTP pool is sized then, for the whole app's slots (this gateway may be
        resized up to them)."""
        apply_litellm_environment(backend.base_url if backend.provider == "ollama" else None, settings.llm_slots)
        from integrations.llm import client  # litellm is imported here and nowhere else

        client.warm_up(backend)

        return client

    def __init__(self, settings: Settings, backend: Backend, store: Handle | None, slots: int | None = None) -> None:
        self._client = self.prepare_process(settings, backend)
        self._settings = settings
        self._backend = _keyed(backend, settings)
        self._store = typed(store, StoreApi) if store is not None else None
        self._slots = PrioritySlots(slots if slots is not None else settings.llm_slots)
        self._in_flight = 0
        self._records: list[dict[str, Any]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self._last_activity = 0.0  # monotonic time we last sent the server a request or it sent us text
        self._tokens: list[tuple[str, str, str]] = []  # (run id, phase, text) waiting for the Store
        self._token_lock = asyncio.Lock()
        self._token_flusher: asyncio.Task[None] | None = None
        self._by_run: dict[str, set[asyncio.Task[None]]] = {}  # sub-agents' requests in flight, by run
        self._tools: ToolSupport | None = None  # what the tool check found, for ``_tools_key``
        self._tools_key: tuple[str, str] | None = None
        self._tools_check: asyncio.Task[None] | None = None
        self._tools_failed_at = 0.0
        self._formats_seen: set[tuple[str, ToolCallFormat]] = set()

    async def chat(self, req: ChatRequest) -> ChatResponse:
        queued_at = time.perf_counter()
        await self._slots.acquire(req.priority)
        queued_ms = (time.perf_counter() - queued_at) * 1000
        self._in_flight += 1
        self._last_activity = time.monotonic()
        try:
            resp = await self._with_retries(req)
        except LLMError as exc:
            self._record(req, (0, 0), queued_ms, (time.perf_counter() - queued_at) * 1000, str(exc))
            raise
        finally:
            self._in_flight -= 1
            self._slots.release()
        self._last_activity = time.monotonic()
        resp = resp.model_copy(update={"queued_ms": queued_ms, "latency_ms": (time.perf_counter() - queued_at) * 1000})
        self._record(req, (resp.tokens_in, resp.tokens_out), queued_ms, resp.latency_ms, None, resp.tool_call_format)
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
        """Embeddings from the LLM server (the Memory actor's Ollama embedder); background priority."""
        await self._slots.acquire("background")
        try:
            return await self._client.embed(self._backend, texts, model, self._settings.llm_timeout_s)  # type: ignore[no-any-return]
        finally:
            self._slots.release()

    async def _with_retries(self, req: ChatRequest) -> ChatResponse:
        delay = self._settings.llm_retry_backoff_s
        for attempt in range(self._settings.llm_retries + 1):
            try:
                if req.stream_phase is not None and req.run_id is not None and self._store is not None:
                    return await self._streamed(req)
                return await self._client.complete(self._backend, req, self._settings.llm_timeout_s)
            except LLMError as exc:
                if not exc.transient or attempt == self._settings.llm_retries:
                    raise
                delay = await self._back_off(req, attempt, exc, delay)
        raise LLMUnavailable("unreachable")  # pragma: no cover - loop always returns or raises

    async def _back_off(self, req: ChatRequest, attempt: int, exc: LLMError, delay: float) -> float:
        """Wait before retrying a transient error (jittered); returns the next delay."""
        _log.warning("llm.retry", attempt=attempt + 1, error=str(exc), run_id=req.run_id, task_id=req.task_id)
        await asyncio.sleep(delay * (0.5 + self._rng.random()))
        return delay * 2

    async def _streamed(self, req: ChatRequest) -> ChatResponse:
        """A call whose text goes into the run's event log as it is written (the first chunk at once,
        then batched with every other stream's every ``_TOKEN_FLUSH_S``); returns the whole reply once
        all of it is committed there. A transient error before the first chunk is retried by the caller;
        one after it is not (the text is already shown)."""
        assert req.run_id is not None and req.stream_phase is not None
        started = time.perf_counter()
        parts: list[str] = []
        usage = (0, 0)
        try:
            async for delta in self._client.stream(self._backend, req, self._settings.llm_timeout_s):
                if not isinstance(delta, str):  # the reply's token counts, after its text
                    usage = delta
                    continue
                self._last_activity = time.monotonic()
                parts.append(delta)
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
                            model=self._backend.model_for(req.role), tokens_in=usage[0], tokens_out=usage[1],
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

        A transient error before the first delta is retried like ``chat``; after it, it is raised
        (the caller has shown part of the text)."""
        queued_at = time.perf_counter()
        await self._slots.acquire(req.priority)
        queued_ms = (time.perf_counter() - queued_at) * 1000
        self._in_flight += 1
        buf: list[str] = []
        last = 0.0
        first = True
        error: str | None = None
        usage = (0, 0)
        delay = self._settings.llm_retry_backoff_s
        try:
            for attempt in range(self._settings.llm_retries + 1):
                try:
                    async for delta in self._client.stream(self._backend, req, self._settings.llm_timeout_s):
                        if not isinstance(delta, str):  # the reply's token counts, after its text
                            usage = delta
                            continue
                        buf.append(delta)
                        now = time.perf_counter()
                        if first or now - last >= flush_s:
                            yield StreamChunk(text="".join(buf))
                            buf, last, first = [], now, False
                    break
                except LLMError as exc:
                    if not first or not exc.transient or attempt == self._settings.llm_retries:
                        error = str(exc)
                        raise
                    delay = await self._back_off(req, attempt, exc, delay)
            yield StreamChunk(text="".join(buf), done=True)
        finally:
            self._in_flight -= 1
            self._slots.release()
            self._record(req, usage, queued_ms, (time.perf_counter() - queued_at) * 1000, error)

    def _row(self, req: ChatRequest, usage: tuple[int, int], queued_ms: float, latency_ms: float,
             error: str | None, call_format: ToolCallFormat | None = None) -> dict[str, Any]:
        return {
            "run_id": req.run_id, "task_id": req.task_id, "agent": req.agent,
            "model": self._backend.model_for(req.role), "tokens_in": usage[0], "tokens_out": usage[1],
            "latency_ms": latency_ms, "queued_ms": queued_ms, "ok": error is None, "error": error,
            "created_at": time.time(), "tool_call_format": call_format,
        }

    def _record(self, req: ChatRequest, usage: tuple[int, int], queued_ms: float, latency_ms: float,
                error: str | None, call_format: ToolCallFormat | None = None) -> None:
        """One row of ``agent_runs`` (``usage``: tokens in and out), written with others shortly; the first
        time a model writes its tool calls in a form, that is logged too."""
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
        """Apply new settings: another server or model, or a different number of slots."""
        apply_litellm_environment(backend.base_url if backend.provider == "ollama" else None)
        self._settings = settings
        self._backend = _keyed(backend, settings if settings.llm_api_key is not None else self._settings)
        self._slots.resize(slots)
        _log.info("gateway.configured", provider=backend.provider, slots=slots)

    async def health(self) -> dict[str, Any]:
        self._check_tools()
        models = await probe(self._backend.base_url, self._backend.provider)
        # A one-request server (the embedded model) answers nothing else while it works on one:
        # a request of ours it took, or text it sent, moments ago means it is up, just busy.
        busy = self._in_flight > 0 and time.monotonic() - self._last_activity < _BUSY_GRACE_S
        return {
            "provider": self._backend.provider, "base_url": self._backend.base_url,
            "models": {"planner": self._backend.planner_model, "worker": self._backend.worker_model},
            "reachable": models is not None or busy, "in_flight": self._in_flight, "waiting": self._slots.waiting,
            "tools": self._tools.model_dump() if self._tools is not None else None,
        }

    def _check_tools(self) -> None:
        """Start the tool check unless it ran for this server and model (or is running, or failed moments ago).
        It never delays the caller: until it answers, ``health`` reports it as checking."""
        key = (self._backend.base_url, self._backend.worker_model)
        if self._tools_check is not None and not self._tools_check.done():
            return
        if key == self._tools_key and self._tools is not None and (
                self._tools.state != "unknown" or time.monotonic() - self._tools_failed_at < _TOOL_CHECK_RETRY_S):
            return
        self._tools_key, self._tools = key, tool_check_pending(self._backend.worker_model)
        self._tools_check = asyncio.get_running_loop().create_task(self._probe_tools(key))

    async def _probe_tools(self, key: tuple[str, str]) -> None:
        """One request offering ``get_time``: did the model call it natively, as text (which form), or not?
        Background priority, and not an ``agent_runs`` row (no run asked for it)."""
        backend = self._backend
        await self._slots.acquire("background")
        self._in_flight += 1
        try:
            resp = await self._client.complete(backend, tool_probe_request(),
                                               min(self._settings.llm_timeout_s, _TOOL_CHECK_TIMEOUT_S))
            found = tool_support(backend.worker_model, resp.tool_call_format, None, time.time())
        except Exception as exc:  # LLMError, or anything else: the check says so and is tried again later
            found = tool_support(backend.worker_model, None, str(exc) or type(exc).__name__, time.time())
        finally:
            self._in_flight -= 1
            self._slots.release()
        if found.state == "unknown":
            self._tools_failed_at = time.monotonic()
        if key == self._tools_key:  # not a check of a server or model since replaced
            self._tools = found
        _log.info("gateway.tool_check", model=backend.worker_model, state=found.state, format=found.format)

    async def ping(self) -> bool:
        return True


ActorLLMGateway = actor_class(LLMGateway)  # what Ray runs (see actors.runtime.boot)


def _keyed(backend: Backend, settings: Settings) -> Backend:
    """``backend`` with the API key this process holds (a backend crosses processes without it)."""
    if backend.api_key is not None or settings.llm_api_key is None:
        return backend
    return dataclasses.replace(backend, api_key=settings.llm_api_key.get_secret_value())
