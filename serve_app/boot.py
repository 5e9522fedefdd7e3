"""Bringing the app up from an entry point: settings → Ray → the Store (and the settings saved in it)
→ backend → the other actors.

The embedded model server, when the backend needs it, belongs to the process that booted the
app and stops with it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from actors.runtime import wiring
from actors.runtime.typed import blocking
from core.settings import Settings, overlay
from integrations.llm.backend import Backend, redact_url, reported_backend, resolve
from integrations.llm.embedded import EmbeddedServer

# Replaced by what the running app's gateway reports, right after connecting.
_UNKNOWN_BACKEND = Backend(provider="ollama", base_url="", planner_model="", worker_model="", api_key=None)


@dataclass
class Booted:
    app: wiring.App
    settings: Settings  # with the values saved from the UI on top
    owned: bool  # this process started the app (and stops it)
    embedded: EmbeddedServer | None = None
    started_at: float = field(default_factory=time.time)

    def close(self) -> None:
        if self.owned:
            wiring.kill_app(self.app)
            wiring.shutdown_ray()
        if self.embedded is not None:
            self.embedded.stop()


def resolve_backend(settings: Settings) -> tuple[Backend, EmbeddedServer | None]:
    holder: list[EmbeddedServer] = []

    def start_embedded() -> str:
        server = EmbeddedServer(settings.embedded_model_path, port=settings.embedded_port, n_ctx=settings.embedded_ctx)
        holder.append(server)
        return server.start()

    backend = asyncio.run(resolve(settings, start_embedded))  # it logs the choice (the URL without credentials)
    return backend, (holder[0] if holder else None)


def attach_or_start(settings: Settings, dashboard: bool = True) -> Booted:
    """Use the app running on this data directory if there is one, else start one here (a command
    that starts its own app for one request passes ``dashboard=False``: it starts faster)."""
    address = wiring.app_address(settings)
    if address is not None:
        wiring.init_ray(settings, address)
        app = wiring.connect(settings, _UNKNOWN_BACKEND)
        if app is not None:
            app.backend = reported_backend(blocking(app.gateways[0].health(), timeout=10))
            return Booted(app=app, settings=settings, owned=False)
        wiring.shutdown_ray()
    # The Store first: the settings saved from the UI are in its database (no other process opens the
    # file), and they choose the LLM backend the rest starts with.
    wiring.init_ray(settings, dashboard=dashboard)
    embedded = None
    try:
        store = wiring.start_store(settings)
        settings = overlay(settings, wiring.saved_settings(store))
        backend, embedded = resolve_backend(settings)
        app = wiring.start_app(settings, backend, store)
    except BaseException:
        if embedded is not None:
            embedded.stop()
        wiring.shutdown_ray()
        raise
    return Booted(app=app, settings=settings, owned=True, embedded=embedded)


def probe_backend(settings: Settings) -> str:
    """Which backend ``auto`` would pick now, without starting the embedded model."""
    def not_started() -> str:
        return "(embedded model: starts with the app)"

    try:
        backend = asyncio.run(resolve(settings, not_started))
    except Exception as exc:
        return f"llm: cannot resolve a backend: {exc}"
    return f"llm: {backend.provider} at {redact_url(backend.base_url)} · planner {backend.planner_model} · worker {backend.worker_model}"
