"""Can the model call tools? One request at start-up (and again after a failed check), made by the gateway.

Plain code: :class:`ToolCheck` keeps what the check found for a (server, model) and starts it when
that is unknown; the request itself goes through the gateway (``ask``), at background priority.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from core.chat_schemas import ChatRequest, ChatResponse
from core.schemas import ToolSupport
from integrations.llm.backend import tool_check_pending, tool_probe_request, tool_support

_log = structlog.get_logger("maos.gateway")
RETRY_S = 60.0  # a check that failed (server down, timeout) is tried again after this
TIMEOUT_S = 120.0
Ask = Callable[[ChatRequest, float], Awaitable[ChatResponse]]


class ToolCheck:
    """What the tool check found for the current server and model (None before the first)."""

    def __init__(self) -> None:
        self.found: ToolSupport | None = None
        self._key: tuple[str, str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._failed_at = 0.0

    def ensure(self, url: str, model: str, ask: Ask, timeout_s: float) -> None:
        """Start the check unless it ran for this server and model (or is running, or failed moments ago).
        It never delays the caller: until it answers, ``found`` says it is checking."""
        key = (url, model)
        if self._task is not None and not self._task.done():
            return
        if key == self._key and self.found is not None and (
                self.found.state != "unknown" or time.monotonic() - self._failed_at < RETRY_S):
            return
        self._key, self.found = key, tool_check_pending(model)
        self._task = asyncio.get_running_loop().create_task(self._run(key, ask, min(timeout_s, TIMEOUT_S)))

    async def _run(self, key: tuple[str, str], ask: Ask, timeout_s: float) -> None:
        """One request offering ``get_time``: did the model call it natively, as text (which form), or not?"""
        model = key[1]
        try:
            resp = await ask(tool_probe_request(), timeout_s)
            found = tool_support(model, resp.tool_call_format, None, time.time())
        except Exception as exc:  # LLMError, or anything else: the check says so and is tried again later
            found = tool_support(model, None, str(exc) or type(exc).__name__, time.time())
        if found.state == "unknown":
            self._failed_at = time.monotonic()
        if key == self._key:  # not a check of a server or model since replaced
            self.found = found
        _log.info("gateway.tool_check", model=model, state=found.state, format=found.format)
