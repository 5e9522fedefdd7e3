"""How the HTTP layer reaches the runtime: the app's named actors, found on first use.

The replica may run on any node of the cluster; it holds no state of its own beyond the live
settings (loaded from the Store, so a restarted replica sees what was saved).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from actors.runtime import wiring
from actors.runtime.apis import MemoryApi, StoreApi, WorkspaceApi
from actors.runtime.typed import typed
from core.errors import ActorGone, QueueFull
from core.settings import Settings, overlay
from integrations.llm.backend import Backend, reported_backend
from serve_app.live_settings import LiveSettings


class RuntimeAccess:
    def __init__(self, settings: Settings, dashboard_url: str | None = None) -> None:
        self.live = LiveSettings(settings)
        self.dashboard_url = dashboard_url
        self._app: wiring.App | None = None
        # The app's actors, found on first call (and again after ``forget``): ``await rt.store.get_run(...)``.
        self.store = typed(_AppRole(self, "store"), StoreApi)
        self.memory = typed(_AppRole(self, "memory"), MemoryApi)
        self.workspace = typed(_AppRole(self, "workspace"), WorkspaceApi)

    async def app(self) -> wiring.App:
        if self._app is None:
            found = wiring.connect(self.live.settings, None)  # type: ignore[arg-type]  # backend: asked below
            if found is None:
                raise ActorGone("the runtime actors are not running", "app")
            self.live.settings = overlay(self.live.settings, await found.store.settings_overrides())
            self._app = found
        return self._app

    def forget(self) -> None:
        """After an actor was found gone: look the actors up again next time."""
        self._app = None

    async def llm(self) -> dict[str, Any]:
        """What the gateway reports: provider, URL, models, reachable, in flight, waiting."""
        return await (await self.app()).gateways[0].health()

    async def backend(self) -> Backend:
        key = self.live.settings.llm_api_key
        return reported_backend(await self.llm(), key.get_secret_value() if key is not None else None)

    async def check_room(self) -> None:
        """Refuse new work past the queue bound (the API answers 429 with Retry-After)."""
        bound = self.live.settings.queue_bound
        open_tasks = await self.store.open_task_count()
        if open_tasks >= bound:
            raise QueueFull(f"the queue holds {open_tasks} open tasks (bound {bound}); try again shortly", 10)


class _AppRole:
    """A Handle to one of the app's actors by its role (``store``), through :meth:`RuntimeAccess.app`
    at each call: the HTTP layer names the actor before the app is found (or found again)."""

    def __init__(self, rt: RuntimeAccess, role: str) -> None:
        self._rt = rt
        self.name = role

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await getattr(getattr(await self._rt.app(), self.name), method)(*args, **kwargs)

    async def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for item in getattr(getattr(await self._rt.app(), self.name), method)(*args, **kwargs):
            yield item
