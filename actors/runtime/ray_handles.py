"""Ray actors behind the :class:`~actors.runtime.handles.Handle` protocol.

A module of its own, importing little: handles travel as actors' constructor arguments, so Ray
imports this module in every actor's process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

from core.errors import ActorGone, MaosError

GONE = (RayActorError, ActorDiedError, ActorUnavailableError)


class RayHandle:
    """A Ray actor behind the Handle protocol; actor death becomes :class:`ActorGone`."""

    def __init__(self, actor: Any, name: str) -> None:
        self.actor = actor
        self.name = name

    def call(self, method: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Sent now (``fire`` and the order of calls rely on it); the result when awaited."""
        try:
            ref = getattr(self.actor, method).remote(*args, **kwargs)
        except GONE as exc:
            raise self._translated(exc) from None
        return self._result(ref)

    async def _result(self, ref: Any) -> Any:
        try:
            return await ref
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

    async def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        gen = getattr(self.actor, method).remote(*args, **kwargs)
        try:
            async for ref in gen:
                yield await ref
        except (*GONE, RayTaskError) as exc:
            raise self._translated(exc) from None


class LazyHandle:
    """A handle to a named actor from its name alone, resolved on first use: how an actor reaches one
    the runtime starts after it (the master the dispatcher, the dispatcher its pools, pools the others).
    Not a patch-up: the name is all it is given, and nothing is set on the actor afterwards.

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

    def call(self, method: str, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return self._resolve().call(method, *args, **kwargs)

    async def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for item in self._resolve().stream(method, *args, **kwargs):
            yield item

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_inner": None}
