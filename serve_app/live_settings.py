"""Settings changed while the app runs: validated, saved in the Store, applied to the actors.

Saved values overlay the environment's at every start (read from the Store, the one owner of the
database file: ``serve_app.boot``). A change is applied at once where an actor can take it (limits,
budgets, features, another LLM server); what needs a process the app cannot start from here (the
embedded model) is saved and named as needing a restart.

The LLM URL goes out redacted (no ``user:password@``, no query): a URL sent back as shown means
"unchanged". ``test_connection`` reaches only hosts the settings already name, or this machine
(see :func:`check_probe_target`): the endpoint must not let a caller make this server fetch any
URL it likes.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from actors.runtime import wiring
from core.errors import ConfigError
from core.schemas import ConnectionResult, ConnectionTest, EditableSettings, SettingsView
from core.settings import Settings
from integrations.llm.backend import Backend, probe, redact_url, resolve
from integrations.llm.endpoints import redact_endpoints
from serve_app.auth import is_loopback

_log = structlog.get_logger("maos.settings")
LLM_FIELDS = frozenset({"llm_provider", "llm_base_url", "llm_model", "llm_worker_model", "llm_endpoints"})
NULLABLE = frozenset({"llm_base_url", "llm_model", "llm_worker_model"})  # null means "the provider's default"


def editable(settings: Settings) -> EditableSettings:
    return EditableSettings.model_construct(**{name: getattr(settings, name) for name in EditableSettings.model_fields})


def shown(settings: Settings) -> EditableSettings:
    """The values as the API shows them: the LLM URL redacted."""
    values = editable(settings)
    if values.llm_base_url is not None:
        values = values.model_copy(update={"llm_base_url": redact_url(values.llm_base_url)})
    if values.llm_endpoints:
        values = values.model_copy(update={"llm_endpoints": redact_endpoints(values.llm_endpoints, settings.llm_slots)})
    return values


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
        return SettingsView(values=shown(self.settings), applied=applied or [], restart_required=restart or [])

    def _unchanged(self, name: str, value: Any) -> bool:
        current = getattr(self.settings, name)
        if name == "llm_base_url" and current is not None and value == redact_url(current) != current:
            return True  # the redacted URL the API showed, sent back: keep the one with the credentials
        if name == "llm_endpoints" and value == redact_endpoints(current, self.settings.llm_slots) != current:
            return True
        return bool(current == value)

    async def update(self, app: wiring.App, update: EditableSettings, current: Backend) -> SettingsView:
        changes = {k: v for k, v in changes_of(update).items() if not self._unchanged(k, v)}
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
        await app.store.save_settings_overrides(changes)
        slots = max(1, -(-new.llm_slots // len(app.gateways)))
        for gw in app.gateways:
            await gw.configure(settings=new, backend=backend, slots=slots)
        await app.master.configure(settings=new, embedded=backend.provider == "embedded")
        await app.dispatcher.configure(settings=new, gateway_slots=new.total_llm_slots)
        for handles in app.pools.values():
            for h in handles:
                await h.configure(new)
        self.settings = new
        _log.info("settings.updated", fields=applied, restart_required=restart)
        return self.view(applied, restart)


def configured_llm_urls(settings: Settings) -> list[str]:
    """The LLM servers the settings name (the chosen one and where ``auto`` looks)."""
    urls = [settings.ollama_url, settings.lmstudio_url, *(e.url for e in settings.endpoint_list)]
    return [settings.llm_base_url, *urls] if settings.llm_base_url is not None else urls


def _hosts(url: str) -> set[str]:
    """The host as both parsers read it (the standard library's, and httpx's, which makes the call):
    a URL they disagree on names two hosts, and both must be allowed."""
    try:
        return {(urlsplit(url).hostname or "").lower(), httpx.URL(url).host.lower()}
    except (ValueError, httpx.InvalidURL):
        return {""}


def check_probe_target(url: str, settings: Settings) -> None:
    """Refuse (ConfigError, 422) a URL that is neither on this machine (a literal loopback address or
    ``localhost``; names are not resolved) nor on a host the settings already name
    (``llm_base_url``, ``ollama_url``, ``lmstudio_url``), before anything is sent. A server on another
    host is tested after it is saved as ``llm_base_url`` (a change that itself needs the login)."""
    allowed = set().union(*(_hosts(u) for u in configured_llm_urls(settings))) - {""}
    refused = sorted(h for h in _hosts(url) if not (is_loopback(h) or h in allowed))
    if refused:
        raise ConfigError(f"test-connection reaches only this machine and the LLM hosts in the settings "
                          f"({', '.join(sorted(allowed)) or 'none'}); {refused[0] or 'this URL'!r} is neither: "
                          "save it as llm_base_url first")


async def test_connection(req: ConnectionTest, settings: Settings) -> ConnectionResult:
    """Does the server answer, and does it have the model? Only servers ``check_probe_target`` allows;
    a configured URL sent back as the API showed it (redacted) is tested as configured."""
    url = next((u for u in configured_llm_urls(settings) if redact_url(u) == req.base_url), req.base_url)
    check_probe_target(url, settings)
    started = time.perf_counter()
    key = settings.llm_api_key if url == settings.llm_base_url and req.provider != "ollama" else None
    models = await probe(url, req.provider, timeout_s=3.0, api_key=key.get_secret_value() if key is not None else None)
    latency = (time.perf_counter() - started) * 1000
    if models is None:
        return ConnectionResult(ok=False, latency_ms=latency,
                                error=f"{req.provider} at {redact_url(url)} did not answer")
    if req.model is not None and req.model not in models and f"{req.model}:latest" not in models:
        return ConnectionResult(ok=False, models=models, latency_ms=latency,
                                error=f"the server has no model '{req.model}'; it lists: {', '.join(models[:20]) or 'none'}")
    return ConnectionResult(ok=True, models=models, latency_ms=latency)
