"""Ray actors behind the :class:`~actors.runtime.handles.Handle` protocol.

A module of its own, importing little: handles travel as actors' constructor arguments, so Ray
imports this module in every actor's process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import ray
import structlog
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

from core.errors import ActorGone, MaosError

_log = structlog.get_logger("maos.runtime")
GONE = (RayActorError, ActorDiedError, ActorUnavailableError)


class RayHandle:
    """A Ray actor behind the Handle protocol; actor death becomes :class:`ActorGone`."""

    def __init__(self, actor: Any, name: str) -> None:
        self.actor = actor
        self.name = name

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(self.actor, method).remote(*args, **kwargs)
        except (*GONE, RayTaskError) as exc:
            raise self._translated(exc) from None

    def _translated(self, exc: Exception) -> Exception:
        """Actor death becomes ActorGone; the program's own errors cross as themselves, without Ray's
        traceback in the message; anything else as Ray raised it."""
        if isinstance(exc, GONE):
            return ActorGone(f"actor '{self.name}' is gone: {type(exc).__name__}", self.name)
        if isinstance(exc, RayTaskError) and isinstance(exc.cause, MaosError):
            return exc.cause
        return exc

    def fire(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        ref = getattr(self.actor, method).remote(*args, **kwargs)
        fut = asyncio.wrap_future(ref.future())
        fut.add_done_callback(_log_fire_failure(self.name, method))
        return fut

    async def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        gen = getattr(self.actor, method).remote(*args, **kwargs)
        try:
            async for ref in gen:
                yield await ref
        except (*GONE, RayTaskError) as exc:
            raise self._translated(exc) from None

    def get(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Blocking call, for synchronous callers (the CLI)."""
        try:
            return ray.get(getattr(self.actor, method).remote(*args), timeout=timeout)
        except GONE as exc:
            raise ActorGone(f"actor '{self.name}' is gone: {type(exc).__name__}", self.name) from None


def _log_fire_failure(name: str, method: str) -> Any:
    def done(fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            _log.warning("actor.fire_failed", actor=name, method=method, error=repr(fut.exception()))
    return done


class LazyHandle:
    """A handle to a named actor, resolved on first use (breaks the pool ↔ dispatcher creation cycle).

    ``label`` is the name it goes by (a pool's owner id); the actor's name by default.
    """

    def __init__(self, actor_name: str, namespace: str, label: str | None = None) -> None:
        self.name = label if label is not None else actor_name
        self._actor_name = actor_name
        self._namespace = namespace
        self._inner: RayHandle | None = None

    def _resolve(self) -> RayHandle:
        if self._inner is None:
            self._inner = RayHandle(ray.get_actor(self._actor_name, namespace=self._namespace), self.name)
        return self._inner

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._resolve().call(method, *args, **kwargs)

    def fire(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        return self._resolve().fire(method, *args, **kwargs)

    async def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for item in self._resolve().stream(method, *args, **kwargs):
            yield item

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_inner": None}
