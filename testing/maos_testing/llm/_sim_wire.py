"""Ollama and OpenAI wire formats for the simulated LLM: parse requests, encode replies and chunks."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from maos_testing.llm._sim_request import Reply, SimRequest, WireProtocol


def _text(content: Any) -> str:
    """Message content as text: a string, or the text parts of an OpenAI content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def parse_request(protocol: WireProtocol, body: dict[str, Any]) -> SimRequest:
    messages = [(str(m.get("role", "user")), _text(m.get("content")))
                for m in body.get("messages", []) if isinstance(m, dict)]
    tools = [t["function"] if isinstance(t.get("function"), dict) else t
             for t in body.get("tools") or [] if isinstance(t, dict)]
    schema: dict[str, Any] | None = None
    name: str | None = None
    json_mode = False
    if protocol == "ollama":
        fmt = body.get("format")
        if isinstance(fmt, dict):
            schema = fmt
        json_mode = fmt == "json"
        stream = body.get("stream", True) is not False  # Ollama streams unless told not to
        include_usage = True
    else:
        rf = body.get("response_format")
        if isinstance(rf, dict):
            spec = rf.get("json_schema")
            if rf.get("type") == "json_schema" and isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
                schema, name = spec["schema"], spec.get("name")
            elif rf.get("type") == "json_object":
                schema = rf["schema"] if isinstance(rf.get("schema"), dict) else None
                json_mode = schema is None
        stream = body.get("stream") is True
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return SimRequest(protocol=protocol, model=str(body.get("model") or ""), messages=messages, tools=tools,
                      schema=schema, schema_name=name, json_mode=json_mode, stream=stream,
                      include_usage=include_usage)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def error_body(protocol: WireProtocol, status: int, message: str) -> bytes:
    if protocol == "ollama":
        return _dumps({"error": message})
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return _dumps({"error": {"message": message, "type": kind, "param": None, "code": str(status)}})


def _created_at() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _ollama_calls(reply: Reply) -> list[dict[str, Any]]:
    return [{"function": {"name": reply.tool_name, "arguments": reply.tool_args or {}}}]


def _openai_calls(reply: Reply, call_id: str, stream: bool) -> list[dict[str, Any]]:
    call = {"id": call_id, "type": "function",
            "function": {"name": reply.tool_name, "arguments": json.dumps(reply.tool_args or {})}}
    return [{"index": 0, **call}] if stream else [call]


def _ollama_done(model: str, tokens_in: int, tokens_out: int, elapsed_s: float) -> dict[str, Any]:
    ns = int(elapsed_s * 1e9)
    return {"model": model, "created_at": _created_at(), "done": True, "done_reason": "stop",
            "total_duration": ns, "load_duration": 0, "prompt_eval_count": tokens_in,
            "prompt_eval_duration": ns // 10, "eval_count": tokens_out, "eval_duration": ns - ns // 10}


def _usage(tokens_in: int, tokens_out: int) -> dict[str, int]:
    return {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}


def full_body(req: SimRequest, reply: Reply, seq: int, tokens_in: int, tokens_out: int, elapsed_s: float) -> bytes:
    """A non-streaming answer."""
    if req.protocol == "ollama":
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_name is not None:
            message["tool_calls"] = _ollama_calls(reply)
        return _dumps({**_ollama_done(req.model, tokens_in, tokens_out, elapsed_s), "message": message})
    msg: dict[str, Any] = {"role": "assistant", "content": reply.text if reply.tool_name is None else None}
    if reply.tool_name is not None:
        msg["tool_calls"] = _openai_calls(reply, f"call_{seq}_0", stream=False)
    return _dumps({
        "id": f"chatcmpl-sim-{seq}", "object": "chat.completion", "created": int(time.time()),
        "model": req.model, "system_fingerprint": "fp_sim",
        "choices": [{"index": 0, "message": msg, "logprobs": None,
                     "finish_reason": "tool_calls" if reply.tool_name is not None else "stop"}],
        "usage": _usage(tokens_in, tokens_out),
    })


def stream_chunk(req: SimRequest, seq: int, text: str, first: bool) -> bytes:
    """One streamed text piece (NDJSON line or SSE event)."""
    if req.protocol == "ollama":
        return _dumps({"model": req.model, "created_at": _created_at(),
                       "message": {"role": "assistant", "content": text}, "done": False}) + b"\n"
    delta = {"role": "assistant", "content": text} if first else {"content": text}
    return _sse(_chunk(req, seq, [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]))


def stream_tool_call(req: SimRequest, reply: Reply, seq: int) -> bytes:
    if req.protocol == "ollama":
        return _dumps({"model": req.model, "created_at": _created_at(), "done": False,
                       "message": {"role": "assistant", "content": "", "tool_calls": _ollama_calls(reply)}}) + b"\n"
    delta = {"role": "assistant", "content": None, "tool_calls": _openai_calls(reply, f"call_{seq}_0", stream=True)}
    return _sse(_chunk(req, seq, [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]))


def stream_end(req: SimRequest, reply: Reply, seq: int, tokens_in: int, tokens_out: int, elapsed_s: float) -> bytes:
    """The closing chunk(s): Ollama's done line; OpenAI's finish chunk, usage chunk and [DONE]."""
    if req.protocol == "ollama":
        done = _ollama_done(req.model, tokens_in, tokens_out, elapsed_s)
        return _dumps({**done, "message": {"role": "assistant", "content": ""}}) + b"\n"
    finish = "tool_calls" if reply.tool_name is not None else "stop"
    out = _sse(_chunk(req, seq, [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}]))
    if req.include_usage:
        out += _sse({**_chunk(req, seq, []), "usage": _usage(tokens_in, tokens_out)})
    return out + b"data: [DONE]\n\n"


def _chunk(req: SimRequest, seq: int, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"chatcmpl-sim-{seq}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": req.model, "system_fingerprint": "fp_sim", "choices": choices}


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


# --- model listings ----------------------------------------------------------------------------

_TEMPLATE = ("{{- if .Tools }}<|tools|>{{ range .Tools }}{{ . }}{{ end }}{{ end }}"
             "{{ range .Messages }}<|{{ .Role }}|>{{ .Content }}{{ end }}<|assistant|>")
_DETAILS = {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
            "parameter_size": "1B", "quantization_level": "Q4_K_M"}


def ollama_tags(model: str) -> dict[str, Any]:
    return {"models": [{"name": model, "model": model, "modified_at": "2025-01-01T00:00:00Z",
                        "size": 1_000_000, "digest": "sim" + "0" * 61, "details": _DETAILS}]}


def ollama_show(model: str) -> dict[str, Any]:
    return {
        "license": "", "modelfile": f"FROM {model}\n", "parameters": "num_ctx 32768",
        "template": _TEMPLATE, "details": _DETAILS,
        "model_info": {"general.architecture": "llama", "general.parameter_count": 1_000_000_000,
                       "llama.context_length": 32768, "llama.embedding_length": 2048},
        "capabilities": ["completion", "tools"], "modified_at": "2025-01-01T00:00:00Z",
    }


def openai_models(model: str) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": model, "object": "model", "created": 1735689600, "owned_by": "sim"}]}
