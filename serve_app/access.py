"""How the HTTP layer reaches the runtime: the app's named actors, found on first use.

The replica may run on any node of the cluster; it holds no state of its own beyond the live
settings (loaded from the Store, so a restarted replica sees what was saved).
"""

from __future__ import annotations

from typing import Any

from actors.runtime import wiring
from core.errors import ActorGone, QueueFull
from core.settings import Settings, overlay
from integrations.llm.backend import Backend, reported_backend
from serve_app.live_settings import LiveSettings


class RuntimeAccess:
    def __init__(self, settings: Settings, dashboard_url: str | None = None) -> None:
        self.live = LiveSettings(settings)
        self.dashboard_url = dashboard_url
        self._app: wiring.App | None = None

    async def app(self) -> wiring.App:
        if self._app is None:
            found = wiring.connect(self.live.settings, None)  # type: ignore[arg-type]  # backend: asked below
            if found is None:
                raise ActorGone("the runtime actors are not running", "app")
            self.live.settings = overlay(self.live.settings, await found.store.call("settings_overrides"))
            self._app = found
        return self._app

    def forget(self) -> None:
        """After an actor was found gone: look the actors up again next time."""
        self._app = None

    async def store(self, method: str, *args: Any) -> Any:
        return await (await self.app()).store.call(method, *args)

    async def llm(self) -> dict[str, Any]:
        """What the gateway reports: provider, URL, models, reachable, in flight, waiting."""
        return await (await self.app()).gateways[0].call("health")  # type: ignore[no-any-return]

    async def backend(self) -> Backend:
        key = self.live.settings.llm_api_key
        return reported_backend(await self.llm(), key.get_secret_value() if key is not None else None)

    async def check_room(self) -> None:
        """Refuse new work past the queue bound (the API answers 429 with Retry-After)."""
        bound = self.live.settings.queue_bound
        open_tasks = await self.store("open_task_count")
        if open_tasks >= bound:
            raise QueueFull(f"the queue holds {open_tasks} open tasks (bound {bound}); try again shortly", 10)
