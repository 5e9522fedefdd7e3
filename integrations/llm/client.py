"""The one LLM boundary: the only module that imports litellm.

Tool calls come from the API's field or, when it is empty, from the reply's text (the forms many
local models write: see :mod:`integrations.llm.toolcalls`); the reply says which form they were in.

Import it only where LLM calls are made (the gateway actor): ``import litellm`` costs 2-3 s
and ~190 MB. :func:`core.settings.apply_litellm_environment` must run first.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import litellm
import structlog

from core.chat_schemas import ChatMessage, ChatRequest, ChatResponse
from core.errors import LLMError, LLMUnavailable
from integrations.llm.backend import Backend
from integrations.llm.toolcalls import assistant_reply

_log = structlog.get_logger("maos.llm")
litellm.suppress_debug_info = True
litellm.drop_params = True
litellm.telemetry = False

# litellm's price catalogue lists ~4,900 hosted models. On every Ollama call litellm scans all of it
# several times (``OllamaModelInfo._is_static_ollama_model`` lower-cases every key into a new set, ~1 ms
# a scan): measured 16.5 -> 10.5 ms of CPU per call. This program talks to local servers only, through
# these providers, and registers each model it uses (``register_local_model``); the rest is dropped.
LOCAL_PROVIDERS = frozenset({"ollama", "ollama_chat", "openai"})


def keep_local_catalogue() -> None:
    """Drop litellm's entries for other providers' hosted models (in place: litellm's modules hold the dict)."""
    for key in [k for k, v in litellm.model_cost.items() if v.get("litellm_provider") not in LOCAL_PROVIDERS]:
        del litellm.model_cost[key]


keep_local_catalogue()

# The embedded SmolLM2-135M, left alone, can write to the end of its context (~3,700 tokens: minutes on
# a laptop's CPU, while every other step waits, for its server answers one request at a time). Its
# replies are capped unless the request sets its own cap: a tool call or a short answer fits.
EMBEDDED_REPLY_TOKENS = 512

_UNAVAILABLE = (litellm.APIConnectionError, litellm.ServiceUnavailableError, litellm.BadGatewayError)
_TRANSIENT = (*_UNAVAILABLE, litellm.RateLimitError, litellm.Timeout)


def _message_dict(m: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        out["name"] = m.name
    return out


_registered: set[str] = set()


def register_local_model(model: str) -> None:
    """Tell litellm a local model costs nothing and serves chat, once per model name.

    Without this, litellm looks up every call's model: for Ollama with a synchronous
    ``/api/show`` request from a worker thread (about half the gateway's CPU under load),
    and for any model through a cost calculation that fails.
    """
    if model in _registered:
        return
    provider = model.split("/", 1)[0]
    litellm.register_model({model: {"litellm_provider": provider, "mode": "chat",
                                    "input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
                                    "cache_creation_input_token_cost": 0.0, "cache_read_input_token_cost": 0.0}})
    _registered.add(model)


def request_kwargs(backend: Backend, req: ChatRequest, timeout_s: float) -> dict[str, Any]:
    """litellm keyword arguments for one request (pure; tested without a server)."""
    kwargs: dict[str, Any] = {
        "model": backend.litellm_model(req.role),
        "api_base": backend.litellm_api_base(),
        "messages": [_message_dict(m) for m in req.messages],
        "timeout": timeout_s,
        "num_retries": 0,
    }
    if backend.provider != "ollama":
        kwargs["api_key"] = backend.api_key if backend.api_key is not None else "none"
    if req.json_schema is not None:
        kwargs["response_format"] = structured_format(backend, req.json_schema, req.schema_name or "output")
    if req.tools:
        kwargs["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in req.tools
        ]
    if req.max_tokens is not None:
        kwargs["max_tokens"] = req.max_tokens
    elif backend.provider == "embedded":
        kwargs["max_tokens"] = EMBEDDED_REPLY_TOKENS
    if req.temperature is not None:
        kwargs["temperature"] = req.temperature
    return kwargs


def structured_format(backend: Backend, schema: dict[str, Any], name: str) -> dict[str, Any]:
    """OpenAI-style response_format; litellm turns it into Ollama's ``format`` for ollama_chat."""
    if backend.provider == "embedded":
        # llama-cpp-python's server applies a grammar from json_object + schema.
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def classify(exc: Exception, base_url: str) -> LLMError:
    """Map a litellm exception to the program's errors, naming the server, never the prompt."""
    name = type(exc).__name__
    detail = str(exc).splitlines()[0][:200] if str(exc) else name
    if isinstance(exc, _UNAVAILABLE):
        return LLMUnavailable(f"LLM server at {base_url} is unreachable or busy ({name}): {detail}")
    if isinstance(exc, _TRANSIENT):
        return LLMError(f"LLM server at {base_url} answered a transient error ({name}): {detail}", transient=True)
    return LLMError(f"LLM call to {base_url} failed ({name}): {detail}", transient=False)


class Usage(NamedTuple):
    """A reply's token counts, as the server reported them."""

    tokens_in: int
    tokens_out: int


def _usage(usage: Any) -> Usage:
    """litellm's usage object (or None) as counts."""
    return Usage(int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0))


_warm_lock = threading.Lock()
_warmed = threading.Event()


def warm_up(backend: Backend) -> None:
    """Do litellm's first-call work now, with no server involved (a canned reply): its first request
    otherwise pays ~0.5 s of CPU for modules it imports on first use and its tokenizer tables, and at
    start-up the first plan waited on that while the pools were starting. Once per process; a failure
    here only leaves that work to the first request."""
    with _warm_lock:
        if _warmed.is_set():
            return
        _warmed.set()
        model = backend.litellm_model("planner")
        try:
            register_local_model(model)
            for _ in litellm.completion(model=model, messages=[{"role": "user", "content": "warm up"}], stream=True,
                                        mock_response="ok", api_base=backend.litellm_api_base(), num_retries=0):
                pass
        except Exception as exc:
            _log.warning("llm.warm_up_failed", error=repr(exc))


async def complete(backend: Backend, req: ChatRequest, timeout_s: float) -> ChatResponse:
    """One non-streaming call. Raises LLMError (``transient`` set) or LLMUnavailable."""
    started = time.perf_counter()
    register_local_model(backend.litellm_model(req.role))
    try:
        resp = await litellm.acompletion(**request_kwargs(backend, req, timeout_s))
    except Exception as exc:
        raise classify(exc, backend.base_url) from None
    choice = resp.choices[0]
    msg = choice.message
    tokens_in, tokens_out = _usage(getattr(resp, "usage", None))
    message, call_format = assistant_reply(msg.content or "", msg.tool_calls, req.tools)
    if call_format not in (None, "native"):
        _log.debug("llm.text_tool_calls", format=call_format, calls=len(message.tool_calls),
                   model=backend.model_for(req.role))
    return ChatResponse(
        message=message,
        tool_call_format=call_format,
        model=backend.model_for(req.role),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        latency_ms=(time.perf_counter() - started) * 1000,
    )


async def embed(backend: Backend, texts: list[str], model: str, timeout_s: float) -> list[list[float]]:
    """Embeddings of ``texts`` from the backend's server (Ollama: ``/api/embed``; others: ``/v1/embeddings``)."""
    prefix = "ollama" if backend.provider == "ollama" else "openai"
    kwargs: dict[str, Any] = {"model": f"{prefix}/{model}", "input": texts, "api_base": backend.litellm_api_base(),
                              "timeout": timeout_s}
    if backend.provider != "ollama":
        kwargs["api_key"] = backend.api_key if backend.api_key is not None else "none"
    try:
        resp = await litellm.aembedding(**kwargs)
    except Exception as exc:
        raise classify(exc, backend.base_url) from None
    return [list(item["embedding"]) for item in resp.data]


async def stream(backend: Backend, req: ChatRequest, timeout_s: float) -> AsyncIterator[str | Usage]:
    """Stream text deltas (for text a person watches), then the reply's :class:`Usage` when the
    server reports it (Ollama does in its last chunk; OpenAI-style servers when asked, as here)."""
    register_local_model(backend.litellm_model(req.role))
    try:
        resp = await litellm.acompletion(**request_kwargs(backend, req, timeout_s), stream=True,
                                         stream_options={"include_usage": True})
        usage = None
        async for chunk in resp:
            delta = chunk.choices[0].delta.content if chunk.choices else None
            if delta:
                yield delta
            usage = getattr(chunk, "usage", None) or usage
    except Exception as exc:
        raise classify(exc, backend.base_url) from None
    if usage is not None:
        yield _usage(usage)
