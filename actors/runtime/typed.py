"""Typed calls across actors: a :class:`Handle` seen through its actor's API ``Protocol``.

``typed(handle, StoreApi)`` returns a proxy that mypy reads as a ``StoreApi``: attribute access
gives a callable that sends ``handle.call(name, ...)`` (Ray: ``actor.name.remote(...)``), so
``await store.list_tasks(status="dead", limit=50)`` is checked like a local call. A method the
Protocol marks :func:`streams` (the actor's async generators) is streamed instead
(``async for chunk in gateway.stream(req)``). Fire and forget: ``fire(dispatcher.wake())``; a
synchronous caller (the CLI): ``blocking(store.list_tasks(), timeout=30)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar, cast

import structlog

from actors.runtime.handles import Handle

_log = structlog.get_logger("maos.runtime")
A = TypeVar("A")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
_STREAMS = "__maos_streams__"
_pending: set[asyncio.Future[Any]] = set()  # fired calls, kept until done (a task nobody holds may vanish)


def streams(method: F) -> F:
    """Marks a Protocol method that the actor answers as a stream (an async generator)."""
    setattr(method, _STREAMS, True)
    return method


class Call(Generic[T]):
    """One call in flight: awaitable, and named (actor, method) for the log when it is fired."""

    __slots__ = ("_awaitable", "actor", "method")

    def __init__(self, awaitable: Awaitable[T], actor: str, method: str) -> None:
        self._awaitable = awaitable
        self.actor = actor
        self.method = method

    def __await__(self) -> Generator[Any, None, T]:
        return self._awaitable.__await__()


class _Typed:
    """The proxy behind :func:`typed`. Only names the API declares are sent."""

    def __init__(self, handle: Handle, api: type) -> None:
        self._handle = handle
        self._api = api

    def __getattr__(self, name: str) -> Callable[..., Any]:
        member = None if name.startswith("_") else getattr(self._api, name, None)
        if member is None or not callable(member):
            raise AttributeError(f"{self._api.__name__} has no method {name!r}")
        handle = self._handle
        if getattr(member, _STREAMS, False):
            def stream(*args: Any, **kwargs: Any) -> Any:
                return handle.stream(name, *args, **kwargs)
            return stream

        def call(*args: Any, **kwargs: Any) -> Call[Any]:
            return Call(handle.call(name, *args, **kwargs), handle.name, name)
        return call

    def __reduce__(self) -> tuple[Any, ...]:
        return (typed, (self._handle, self._api))

    def __repr__(self) -> str:
        return f"typed({self._handle.name!r}, {self._api.__name__})"


def typed(handle: Handle, api: Callable[..., A]) -> A:
    """``handle`` as its actor's API: ``typed(RayHandle(actor, "store"), StoreApi)``. (``api`` is typed
    as a callable because mypy refuses a Protocol where ``type[A]`` is asked for.)"""
    return cast(A, _Typed(handle, cast(type, api)))


def handle_of(proxy: object) -> Handle:
    """The handle behind a :func:`typed` proxy (the runtime's kills and placement need the actor)."""
    if not isinstance(proxy, _Typed):
        raise TypeError(f"not a typed handle: {proxy!r}")
    return proxy._handle


def fire(call: Awaitable[Any]) -> asyncio.Future[Any]:
    """Start ``call`` and return without waiting (fire and forget): a failure is logged
    (``actor.fire_failed``), never raised. The returned future may be awaited or dropped."""
    fut = asyncio.ensure_future(call)
    actor, method = (call.actor, call.method) if isinstance(call, Call) else ("?", "?")
    _pending.add(fut)

    def done(f: asyncio.Future[Any]) -> None:
        _pending.discard(f)
        if not f.cancelled() and f.exception() is not None:
            _log.warning("actor.fire_failed", actor=actor, method=method, error=repr(f.exception()))

    fut.add_done_callback(done)
    return fut


def blocking(call: Awaitable[T], timeout: float | None = None) -> T:
    """Wait for ``call`` from synchronous code (the CLI): its own event loop, at most ``timeout``
    seconds (``TimeoutError`` past it)."""
    async def wait() -> T:
        return await asyncio.wait_for(call, timeout)
    return asyncio.run(wait())
