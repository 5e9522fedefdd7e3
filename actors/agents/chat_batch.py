"""A pool's sub-agents reach other actors in few Ray calls.

A Ray actor call costs here about 1 ms of the caller's CPU and 1.5 ms of the callee's (a 4 KB
request), a fifth of what litellm itself spends on the call, and a pool made two per step to the
gateway, besides its tools' queries. Requests made within ``window_s`` of each other go as one call:
LLM requests to the gateway's ``chat_many``, whose replies come back on that call's stream as they
are ready (coalesced there), so a slow one holds up none; tools' storage operations and searches to the
Store's ``tool_ops`` and Memory's ``search_many``, which answer each one, or say why not, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from core.chat_schemas import ChatRequest, ChatResponse
from core.errors import LLMError

Req = TypeVar("Req")
Ans = TypeVar("Ans")


class _Window(Generic[Req, Ans]):
    """Requests made within ``window_s`` of the first go to ``_send`` together, which settles their futures."""

    def __init__(self, window_s: float) -> None:
        self._window = window_s
        self._pending: list[tuple[Req, asyncio.Future[Ans]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()

    async def _ask(self, request: Req) -> Ans:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Ans] = loop.create_future()
        self._pending.append((request, fut))
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send_soon())
        return await fut

    async def _send_soon(self) -> None:
        await asyncio.sleep(self._window)  # let the sub-agents woken with this one join it
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _send(self, batch: list[tuple[Req, asyncio.Future[Ans]]]) -> None:
        raise NotImplementedError


def _settle(fut: asyncio.Future[Any], answer: Any) -> None:
    if fut.done():  # its sub-agent was cancelled
        return
    if isinstance(answer, BaseException):
        fut.set_exception(answer)
    else:
        fut.set_result(answer)


class ChatMany(Protocol):
    """The LLM gateway as a batch sees it (a typed gateway handle: ``actors.runtime.apis.GatewayApi``)."""

    def chat_many(self, reqs: list[ChatRequest]) -> AsyncIterator[list[tuple[int, ChatResponse | LLMError]]]: ...


class BatchedChat(_Window[ChatRequest, ChatResponse]):
    def __init__(self, gateway: ChatMany, window_s: float = 0.002) -> None:
        super().__init__(window_s)
        self._gateway = gateway

    async def chat(self, req: ChatRequest) -> ChatResponse:
        """The gateway's reply to ``req``; raises what its ``chat`` would (LLMError), or ActorGone."""
        return await self._ask(req)

    async def _send(self, batch: list[tuple[ChatRequest, asyncio.Future[ChatResponse]]]) -> None:
        futures = [fut for _, fut in batch]
        try:
            async for replies in self._gateway.chat_many([req for req, _ in batch]):
                for i, reply in replies:
                    _settle(futures[i], reply)
        except Exception as exc:  # the gateway died or the call failed: every request still waiting learns why
            for fut in futures:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for fut in futures:
            if not fut.done():
                fut.set_exception(LLMError("the LLM gateway ended a batch without this reply"))


class BatchedCalls(_Window[Any, Any]):
    """Requests of one kind sent as one call (``send``: every request's answer, or the error it ended
    in, in order)."""

    def __init__(self, send: Callable[[list[Any]], Awaitable[list[Any]]], window_s: float = 0.002) -> None:
        super().__init__(window_s)
        self._send_all = send

    async def __call__(self, request: Any) -> Any:
        return await self._ask(request)

    async def _send(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        try:
            answers = await self._send_all([request for request, _ in batch])
        except Exception as exc:  # the actor is gone or restarting: every request of the batch fails with it
            answers = [exc] * len(batch)
        for (_, fut), answer in zip(batch, answers, strict=True):
            _settle(fut, answer)
