"""How actors reach each other underneath: a small untyped protocol, with a Ray implementation in
``ray_handles`` and an in-process one here, so the classes run and test without Ray. Callers do not
use it directly: :func:`actors.runtime.typed.typed` views a handle through its actor's API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol


class Handle(Protocol):
    """A reference to an actor. ``call`` sends the call and returns its awaitable result; ``stream``
    the items of a method that yields them."""

    name: str

    def call(self, method: str, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...

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

    async def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for item in getattr(self.obj, method)(*args, **kwargs):
            yield item
