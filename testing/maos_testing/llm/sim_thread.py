"""The simulated LLM server on its own event loop in a daemon thread, for tests (sync code)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future as ThreadFuture
from typing import Any, TypeVar

from maos_testing.llm._sim_state import SimConfig
from maos_testing.llm.sim_server import SimLLMServer

_T = TypeVar("_T")
__all__ = ["SimConfig", "SimHandle", "sim_llm_in_thread"]


class SimHandle:
    """A sim server on its own event loop in a daemon thread, driven from ordinary (sync) code."""

    def __init__(self, config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = SimLLMServer(config)
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sim-llm", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _call(self, fn: Callable[[], Awaitable[_T]], timeout: float = 10.0) -> _T:
        async def run() -> _T:
            return await fn()

        fut: ThreadFuture[_T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return fut.result(timeout)

    def _sync(self, fn: Callable[[], _T]) -> _T:
        async def run() -> _T:
            return fn()

        return self._call(run)

    def start(self) -> str:
        """Start (or restart, on the same port after :meth:`stop`)."""
        url = self._call(lambda: self.server.start(self.host, self.port))
        self.port = int(self.server.port or self.port)
        return url

    def stop(self) -> None:
        self._call(self.server.stop)

    def log(self) -> list[dict[str, Any]]:
        return self._sync(lambda: [dict(r) for r in self.server.log])

    def clear(self) -> None:
        self._sync(self.server.reset)

    def update(self, **knobs: Any) -> None:
        self._sync(lambda: self.server.update(**knobs))

    def stats(self) -> dict[str, int]:
        return self._sync(self.server.stats)

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.stop()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()


@contextlib.contextmanager
def sim_llm_in_thread(config: SimConfig | None = None, port: int = 0) -> Iterator[SimHandle]:
    """Run a sim server in a daemon thread for the ``with`` block; yields its handle."""
    handle = SimHandle(config, port=port)
    try:
        handle.start()
        yield handle
    finally:
        handle.close()
