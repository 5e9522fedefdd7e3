"""Each actor class and its API Protocol (actors/runtime/apis.py) stay in step, and a typed handle
sends what its Protocol declares (call, stream, fire) through the handle underneath."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors.dispatcher import Dispatcher
from actors.gateway import LLMGateway
from actors.master import MasterAgent
from actors.memory import Memory
from actors.pool import SubAgentPool
from actors.runtime import apis
from actors.runtime.handles import LocalHandle
from actors.runtime.typed import fire, streams, typed
from actors.store import Store
from actors.workspace import Workspace

PAIRS: list[tuple[type, type]] = [
    (Store, apis.StoreApi), (LLMGateway, apis.GatewayApi), (MasterAgent, apis.MasterApi),
    (Dispatcher, apis.DispatcherApi), (SubAgentPool, apis.PoolApi), (Memory, apis.MemoryApi),
    (Workspace, apis.WorkspaceApi),
]


def _methods(cls: type) -> dict[str, Any]:
    """Public plain methods (what a handle can call): no properties, static or class methods."""
    out = {}
    for name in dir(cls):
        raw = inspect.getattr_static(cls, name)
        if not name.startswith("_") and inspect.isfunction(raw):
            out[name] = raw
    return out


def _params(fn: Any) -> list[tuple[str, Any]]:
    # Ray's tracing adds ``_ray_trace_ctx`` to a class's methods once it was made an actor in this process
    return [(p.name, p.kind) for p in list(inspect.signature(fn).parameters.values())[1:]
            if p.name != "_ray_trace_ctx"]


@pytest.mark.parametrize(("cls", "api"), PAIRS, ids=[a.__name__ for _, a in PAIRS])
def test_every_public_method_is_in_the_protocol_with_the_same_parameters_and_back(cls: type, api: type) -> None:
    actor, declared = _methods(cls), _methods(api)
    assert sorted(set(actor) - set(declared)) == [], f"add these to {api.__name__}"
    assert sorted(set(declared) - set(actor)) == [], f"{api.__name__} declares methods {cls.__name__} lacks"
    for name, fn in actor.items():
        assert _params(declared[name]) == _params(fn), f"{api.__name__}.{name} differs from {cls.__name__}.{name}"
        assert bool(getattr(declared[name], "__maos_streams__", False)) == inspect.isasyncgenfunction(fn), \
            f"{api.__name__}.{name}: mark with @streams exactly the actor's async generators"


def test_the_drift_check_sees_a_renamed_parameter() -> None:
    class Actor:
        async def get_run(self, run: str) -> None: ...

    class Api:
        async def get_run(self, run_id: str) -> None: ...

    assert _params(Actor.get_run) != _params(Api.get_run)


class _Echo:
    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    async def get_run(self, run_id: str) -> str:
        self.seen.append(("get_run", (run_id,), {}))
        return f"run {run_id}"

    async def list_tasks(self, status: str | None = None, limit: int = 100) -> list[str]:
        self.seen.append(("list_tasks", (), {"status": status, "limit": limit}))
        return [f"{status}:{limit}"]

    async def boom(self) -> None:
        raise RuntimeError("no")

    async def chunks(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i


class _EchoApi:
    async def get_run(self, run_id: str) -> str: ...
    async def list_tasks(self, status: str | None = None, limit: int = ...) -> list[str]: ...  # type: ignore[assignment]
    async def boom(self) -> None: ...

    @streams
    def chunks(self, n: int) -> AsyncIterator[int]: ...


async def test_a_typed_handle_calls_with_keywords_streams_and_fires() -> None:
    echo = _Echo()
    h = typed(LocalHandle(echo, "echo"), _EchoApi)
    assert await h.get_run("r1") == "run r1"
    assert await h.list_tasks(status="dead", limit=5) == ["dead:5"]
    assert [x async for x in h.chunks(3)] == [0, 1, 2]
    done = fire(h.get_run("r2"))
    assert await done == "run r2"
    failed = fire(h.boom())  # logged, not raised by fire
    await asyncio.wait([failed])
    assert isinstance(failed.exception(), RuntimeError)
    assert echo.seen[1] == ("list_tasks", (), {"status": "dead", "limit": 5})
    with pytest.raises(AttributeError, match="_EchoApi has no method 'get_runs'"):
        h.get_runs  # type: ignore[attr-defined]  # noqa: B018  # a name the API lacks is refused before sending
