"""How actors reach each other: a small protocol, with a Ray implementation in ``ray_handles``
and an in-process one here, so the classes run and test without Ray."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol


class Handle(Protocol):
    """A reference to an actor. ``call`` awaits the result; ``fire`` starts the call and
    returns an awaitable that may be dropped (fire and forget)."""

    name: str

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any: ...

    def fire(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]: ...

    def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]: ...


class LocalHandle:
    """An object in this process behind the Handle protocol (tests, single-process tools)."""

    def __init__(self, obj: Any, name: str = "") -> None:
        self.obj = obj
        self.name = name or type(obj).__name__

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.obj, method)(*args, **kwargs)
        if asyncio.iscoroutine(result):
            return await result
        return result

    def fire(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        return asyncio.ensure_future(self.call(method, *args, **kwargs))

    async def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for item in getattr(self.obj, method)(*args, **kwargs):
            yield item
