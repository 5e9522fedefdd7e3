"""Settings changed while the app runs: validated, saved in the Store, applied to the actors.

Saved values overlay the environment's at every start (``with_saved``). A change is applied at
once where an actor can take it (limits, budgets, features, another LLM server); what needs a
process the app cannot start from here (the embedded model) is saved and named as needing a
restart.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import duckdb
import structlog

from actors import runtime
from actors._database import database_keys, open_database
from core.errors import ConfigError
from core.schemas import ConnectionResult, ConnectionTest, EditableSettings, SettingsView
from core.settings import Settings, overlay
from integrations.llm.backend import Backend, probe, resolve

_log = structlog.get_logger("maos.settings")
LLM_FIELDS = frozenset({"llm_provider", "llm_base_url", "llm_model", "llm_worker_model"})
NULLABLE = frozenset({"llm_base_url", "llm_model", "llm_worker_model"})  # null means "the provider's default"


def editable(settings: Settings) -> EditableSettings:
    return EditableSettings.model_construct(**{name: getattr(settings, name) for name in EditableSettings.model_fields})


def with_saved(settings: Settings) -> Settings:
    """At start-up, before the Store runs: read the saved values from the DuckDB file."""
    path = Path(settings.db_path)
    if not path.exists():
        return settings
    try:
        conn = open_database(str(path), database_keys(settings), read_only=True)
    except duckdb.Error as exc:  # held by a running app: it has them already
        _log.info("settings.saved_unreadable", error=str(exc))
        return settings
    try:
        rows = conn.execute("SELECT name, value FROM settings_overrides").fetchall()
    except duckdb.Error:  # a data directory from before the table existed
        return settings
    finally:
        conn.close()
    return overlay(settings, {name: json.loads(value) for name, value in rows})


def changes_of(update: EditableSettings) -> dict[str, Any]:
    """The fields a request sets; null only where it means "default"."""
    changes = update.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None and name not in NULLABLE:
            raise ConfigError(f"{name}: cannot be empty")
    return changes


class LiveSettings:
    """Held by the API replica: the current settings and the actors to tell about changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def view(self, applied: list[str] | None = None, restart: list[str] | None = None) -> SettingsView:
        return SettingsView(values=editable(self.settings), applied=applied or [], restart_required=restart or [])

    async def update(self, app: runtime.App, update: EditableSettings, current: Backend) -> SettingsView:
        changes = {k: v for k, v in changes_of(update).items() if getattr(self.settings, k) != v}
        if not changes:
            return self.view()
        new = self.settings.model_copy(update=changes)
        applied = sorted(changes)
        restart: list[str] = []
        backend = current
        if LLM_FIELDS & changes.keys():
            try:
                backend = await resolve(new, None)
            except ConfigError as exc:
                if new.llm_provider not in ("embedded", "auto"):
                    raise
                if current.provider != "embedded":  # the embedded model starts with the app
                    restart = sorted(LLM_FIELDS & changes.keys())
                    applied = [f for f in applied if f not in restart]
                _log.info("settings.llm_needs_restart", reason=str(exc))
        await app.store.call("save_settings_overrides", changes)
        slots = max(1, -(-new.llm_slots // len(app.gateways)))
        for gw in app.gateways:
            await gw.call("configure", new, backend, slots)
        await app.master.call("configure", new, backend.provider == "embedded")
        await app.dispatcher.call("configure", new, new.llm_slots)
        for handles in app.pools.values():
            for h in handles:
                await h.call("configure", new)
        self.settings = new
        _log.info("settings.updated", fields=applied, restart_required=restart)
        return self.view(applied, restart)


async def test_connection(req: ConnectionTest) -> ConnectionResult:
    """Does the server answer, and does it have the model?"""
    started = time.perf_counter()
    models = await probe(req.base_url, req.provider, timeout_s=3.0)
    latency = (time.perf_counter() - started) * 1000
    if models is None:
        return ConnectionResult(ok=False, latency_ms=latency,
                                error=f"{req.provider} at {req.base_url} did not answer")
    if req.model is not None and req.model not in models and f"{req.model}:latest" not in models:
        return ConnectionResult(ok=False, models=models, latency_ms=latency,
                                error=f"the server has no model '{req.model}'; it lists: {', '.join(models[:20]) or 'none'}")
    return ConnectionResult(ok=True, models=models, latency_ms=latency)
