"""Which LLM server answers: Ollama, LM Studio, an OpenAI-compatible URL, or the embedded model.

``auto`` asks Ollama, then LM Studio, and falls back to the embedded model. Explicit providers
use ``llm_base_url`` or the provider's usual address. Whether the chosen model can call tools is
checked once by the gateway with :func:`tool_probe_request` (read by :func:`tool_support`). Nothing
here imports litellm.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog

from core.chat_schemas import ChatMessage, ChatRequest, ModelRole, ToolSpec
from core.errors import ConfigError
from core.schemas import Provider, ToolCallFormat, ToolSupport
from core.settings import Settings

ProbeKind = Literal["ollama", "openai"]

EMBEDDED_MODEL = "smollm2-135m-instruct"

_log = structlog.get_logger("maos.llm.backend")


@dataclass(frozen=True)
class Backend:
    """A resolved LLM server and the model each role uses on it."""

    provider: Provider
    base_url: str
    planner_model: str
    worker_model: str
    api_key: str | None = field(default=None, repr=False)

    def model_for(self, role: ModelRole) -> str:
        return self.planner_model if role == "planner" else self.worker_model

    def litellm_model(self, role: ModelRole) -> str:
        prefix = "ollama_chat" if self.provider == "ollama" else "openai"
        return f"{prefix}/{self.model_for(role)}"

    def litellm_api_base(self) -> str:
        base = self.base_url.rstrip("/")
        if self.provider == "ollama" or base.endswith("/v1"):
            return base
        return f"{base}/v1"


def reported_backend(health: dict[str, Any], api_key: str | None = None) -> Backend:
    """The backend a running gateway reports in its ``health`` answer."""
    return Backend(provider=health["provider"], base_url=health["base_url"], planner_model=health["models"]["planner"],
                   worker_model=health["models"]["worker"], api_key=api_key)


def _openai_root(url: str) -> str:
    """``http://host:1234`` or ``http://host:1234/v1`` → the URL ``/models`` hangs off."""
    base = url.rstrip("/")
    return base if base.endswith("/v1") else f"{base}/v1"


def redact_url(url: str) -> str:
    """The URL without any ``user:password@`` part, query or fragment (where keys hide): safe to log
    and to show."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not a URL we could have used: show nothing of it
        return "(unparsable URL)"
    if parts.username is None and parts.password is None and not parts.query and not parts.fragment:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def probe(
    url: str,
    provider: ProbeKind | Provider,
    timeout_s: float = 1.0,
    api_key: str | None = None,
) -> list[str] | None:
    """Models the server at ``url`` lists, or None when it does not answer properly.

    Ollama: ``GET {url}/api/tags`` → names. Anything else speaks OpenAI: ``GET {url}/v1/models``
    → ids. Never raises.
    """
    if provider == "ollama":
        endpoint, list_key, id_key = f"{url.rstrip('/')}/api/tags", "models", "name"
    else:
        endpoint, list_key, id_key = f"{_openai_root(url)}/models", "data", "id"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key is not None else None
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(endpoint, headers=headers)
        if response.status_code != 200:
            return None
        entries = response.json()[list_key]
        return [str(entry[id_key]) for entry in entries]
    except Exception:  # unreachable, timed out, not JSON, wrong shape: all mean "no"
        return None


def _pick_models(
    settings: Settings, provider: Provider, base_url: str, listed: list[str] | None
) -> tuple[str, str]:
    if settings.llm_model is not None:
        planner = settings.llm_model
        if listed is not None and not _listed(planner, listed):
            _log.warning(
                "llm_model_not_listed", provider=provider, model=planner, listed=len(listed)
            )
    elif listed:
        planner = listed[0]
    elif listed is None:
        raise ConfigError(
            f"{provider} at {redact_url(base_url)} does not answer, so no model can be chosen; "
            "start it, or name the model with MAOS_LLM_MODEL"
        )
    else:
        hint = " (e.g. `ollama pull llama3.2`)" if provider == "ollama" else ""
        raise ConfigError(
            f"{provider} at {redact_url(base_url)} lists no models; load one{hint} "
            "or name it with MAOS_LLM_MODEL"
        )
    worker = settings.llm_worker_model if settings.llm_worker_model is not None else planner
    return planner, worker


def _listed(model: str, listed: list[str]) -> bool:
    return model in listed or f"{model}:latest" in listed


def _api_key(settings: Settings) -> str | None:
    return settings.llm_api_key.get_secret_value() if settings.llm_api_key is not None else None


async def _server_backend(settings: Settings, provider: Provider, base_url: str) -> Backend:
    api_key = None if provider == "ollama" else _api_key(settings)
    listed = await probe(base_url, provider, api_key=api_key)
    if listed is None:
        _log.warning("llm_server_not_answering", provider=provider, base_url=redact_url(base_url))
    planner, worker = _pick_models(settings, provider, base_url, listed)
    return Backend(provider, base_url.rstrip("/"), planner, worker, api_key)


async def _embedded_backend(
    settings: Settings, start_embedded: Callable[[], str] | None
) -> Backend:
    if start_embedded is None:
        raise ConfigError(
            "no LLM server answered (Ollama at MAOS_OLLAMA_URL, LM Studio at MAOS_LMSTUDIO_URL) "
            "and the embedded model cannot be started here"
        )
    base_url = (await asyncio.to_thread(start_embedded)).rstrip("/")
    listed = await probe(base_url, "embedded")
    model = listed[0] if listed else EMBEDDED_MODEL
    if settings.llm_model is not None or settings.llm_worker_model is not None:
        # Those name models on Ollama or LM Studio; the embedded server runs exactly one.
        _log.info("llm_model_ignored_for_embedded", model=model)
    return Backend("embedded", base_url, model, model, None)


async def _choose(settings: Settings, start_embedded: Callable[[], str] | None) -> Backend:
    provider = settings.llm_provider
    urls = [e.url for e in settings.endpoint_list]  # several servers: the first names the backend
    base_url = settings.llm_base_url if settings.llm_base_url is not None else next(iter(urls), None)
    if provider == "embedded":
        return await _embedded_backend(settings, start_embedded)
    if provider == "openai":
        if base_url is None:
            raise ConfigError("llm_provider 'openai' needs the server's URL in MAOS_LLM_BASE_URL")
        return await _server_backend(settings, "openai", base_url)
    if provider == "ollama":
        return await _server_backend(settings, "ollama", base_url if base_url is not None else settings.ollama_url)
    if provider == "lmstudio":
        return await _server_backend(settings, "lmstudio",
                                     base_url if base_url is not None else settings.lmstudio_url)

    # auto: ask all at once (the listed endpoints first); the first that answers with a model wins, in order.
    lmstudio_key = _api_key(settings)
    places: list[tuple[Provider, str]] = [*((p, u) for u in urls for p in ("ollama", "lmstudio")),
                                          ("ollama", settings.ollama_url), ("lmstudio", settings.lmstudio_url)]
    answers = await asyncio.gather(*(probe(u, p, api_key=None if p == "ollama" else lmstudio_key) for p, u in places))
    candidates = tuple((p, u, a, None if p == "ollama" else lmstudio_key)
                       for (p, u), a in zip(places, answers, strict=True))
    for name, url, listed, key in candidates:
        if listed:
            planner, worker = _pick_models(settings, name, url, listed)
            return Backend(name, url.rstrip("/"), planner, worker, key)
        _log.info("llm_backend_skipped", provider=name, base_url=redact_url(url),
                  reason="no answer" if listed is None else "no models")  # fmt: skip
    return await _embedded_backend(settings, start_embedded)


async def resolve(settings: Settings, start_embedded: Callable[[], str] | None = None) -> Backend:
    """The backend for ``settings.llm_provider``; ``start_embedded`` returns the embedded base URL."""
    backend = await _choose(settings, start_embedded)
    _log.info(
        "llm_backend",
        provider=backend.provider,
        setting=settings.llm_provider,
        base_url=redact_url(backend.base_url),
        planner_model=backend.planner_model,
        worker_model=backend.worker_model,
    )
    return backend


# --- can the model call tools? (one request at start-up, made by the gateway) -------------------

TOOL_PROBE = ToolSpec(name="get_time", description="The current date and time.",
                      parameters={"type": "object", "properties": {}, "required": []})
_NO_TOOLS_ERRORS = ("does not support tools", "tools is not supported", "tool use is not supported")


def tool_probe_request() -> ChatRequest:
    """The check: one short request offering one tool with no arguments, which the answer needs."""
    return ChatRequest(
        messages=[ChatMessage(role="system", content="You can call tools. Call one whenever it gives you what you need."),
                  ChatMessage(role="user", content="What time is it now? Call the get_time tool to find out.")],
        role="worker", priority="background", tools=[TOOL_PROBE], max_tokens=160, temperature=0.0, agent="tool-probe")


def tool_support(model: str, found: ToolCallFormat | None, error: str | None, now: float) -> ToolSupport:
    """What the check's reply (the form of its calls, or the error it ended in) means."""
    if error is not None and not any(e in error.lower() for e in _NO_TOOLS_ERRORS):
        return ToolSupport(model=model, state="unknown", meaning=(
            f"Could not check whether {model} can call tools ({error[:160]}); it is asked again shortly."))
    if found == "native":
        return ToolSupport(model=model, state="native", format=found, checked_at=now, meaning=(
            f"{model} calls tools through the API's tool-call field: sub-agents act with their tools."))
    if found is not None:
        return ToolSupport(model=model, state="text", format=found, checked_at=now, meaning=(
            f"{model} writes its tool calls as text ({found} form); they are read from its replies, so "
            "sub-agents act with their tools."))
    return ToolSupport(model=model, state="none", checked_at=now, meaning=(
        f"{model} cannot call tools: sub-agent steps will answer without acting (no searches, drafts or "
        "proposals). Choose a model that supports tools, e.g. qwen2.5, llama3.1 or mistral."))


def tool_check_pending(model: str) -> ToolSupport:
    return ToolSupport(model=model, state="checking",
                       meaning=f"Checking whether {model} can call tools (one short request).")
