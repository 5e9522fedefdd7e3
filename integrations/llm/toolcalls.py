"""Tool calls a model wrote as text, read back into :class:`ToolCall` objects.

Many models served by Ollama, LM Studio or llama.cpp write their tool calls into the reply's text
instead of the API's ``tool_calls`` field. When that field is empty, these forms are recognised:

- ``hermes`` (Hermes, Qwen 2.5): ``<tool_call>{"name": "f", "arguments": {...}}</tool_call>``, one
  block per call (a last block missing its closing tag counts);
- ``llama`` (Llama 3.x): ``<|python_tag|>{"name": "f", "parameters": {...}}`` (several joined by
  ``;``, or a Python call ``f(a=1)``), and the bare ``{"name": "f", "parameters": {...}}``;
- ``mistral``: ``[TOOL_CALLS][{"name": "f", "arguments": {...}}]`` and the newer
  ``[TOOL_CALLS]f[ARGS]{...}`` (``[CALL_ID]id`` may sit before ``[ARGS]``);
- ``json``: a bare JSON object ``{"name": "f", "arguments": {...}}`` or an array of such objects;
- ``fenced``: such JSON in a fenced block (```` ```json ````), or a Python call in ```` ```tool_code ````.

The marked forms (a tag says "this is a call") always yield calls: a call whose text cannot be read
becomes a :class:`ToolCall` with ``parse_error`` set, which the sub-agent loop answers with what was
wrong instead of running it; an unknown name is answered like any unknown tool. Unmarked JSON counts
only when it names a tool the request offered: an answer that merely looks like a call stays text.
Text around the calls is kept as the message's content. Pure functions, no litellm.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

from core.chat_schemas import ChatMessage, ToolCall, ToolSpec
from core.schemas import ToolCallFormat

INVALID_CALL_NAME = "invalid_tool_call"  # the name of a call whose name could not be read either
_MAX_BODY_CHARS = 20_000  # a call's text past this is not handed to ast (hostile depth, time)
_MAX_BARE_TRIES = 64  # unmarked JSON: candidate positions tried at most (linear time on hostile text)

_HERMES = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_PYTHON_TAG = "<|python_tag|>"
_MISTRAL = "[TOOL_CALLS]"
_MISTRAL_NAMED = re.compile(r"\s*([\w.-]+)\s*(?:\[CALL_ID\]\s*([\w-]*)\s*)?\[ARGS\]")
_END_TOKENS = re.compile(r"<\|(?:eom_id|eot_id|im_end|end)\|>|</s>|<end_of_turn>")
_FENCE = re.compile(r"```[ \t]*(json|tool_call|tool_code|python)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_BARE_START = re.compile(r"[\[{]\s*[\"{]")  # an object with a key, or an array of objects
_NAME_IN_TEXT = re.compile(r"[\"']name[\"']\s*:\s*[\"']([\w.-]{1,64})[\"']")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_ARG_KEYS = ("arguments", "parameters", "args", "input")


class TextCalls(NamedTuple):
    """What a reply's text held: the text without the calls, the calls, and the form they were in."""

    content: str
    calls: list[ToolCall]
    format: ToolCallFormat | None


def assistant_reply(content: str, native: Any, tools: Sequence[ToolSpec]) -> tuple[ChatMessage, ToolCallFormat | None]:
    """The assistant message of a reply: native calls when the API field has any, else calls written in
    the text when the request offered tools, else the text alone; and the form of the calls."""
    calls = native_calls(native)
    if calls:
        return ChatMessage(role="assistant", content=content, tool_calls=calls), "native"
    if tools and content:
        found = parse_text_calls(content, {t.name for t in tools})
        if found.calls:
            return ChatMessage(role="assistant", content=found.content, tool_calls=found.calls), found.format
    return ChatMessage(role="assistant", content=content), None


def native_calls(raw: Any) -> list[ToolCall]:
    """The API's ``tool_calls`` field (litellm objects or plain dicts) as calls; arguments that are not a
    JSON object make a call with ``parse_error``."""
    calls = []
    for i, c in enumerate(raw or []):
        fn = c.function if hasattr(c, "function") else c["function"]
        name = fn.name if hasattr(fn, "name") else fn["name"]
        args = fn.arguments if hasattr(fn, "arguments") else fn.get("arguments")
        cid = getattr(c, "id", None) or (c.get("id") if isinstance(c, dict) else None) or f"call_{i}"
        arguments, error = _arguments(str(name), args)
        calls.append(ToolCall(id=str(cid), name=str(name), arguments=arguments, parse_error=error))
    return calls


def parse_text_calls(text: str, tool_names: Collection[str]) -> TextCalls:
    """Tool calls written in ``text``; ``tool_names``: the tools the request offered."""
    if "<tool_call>" in text:
        return _hermes(text)
    if _MISTRAL in text:
        return _mistral(text)
    if _PYTHON_TAG in text:
        return _python_tag(text)
    fenced = _fenced(text, tool_names)
    if fenced.calls:
        return fenced
    return _bare(text, tool_names)


# --- the marked forms: a tag says a call follows -------------------------------------------------


def _hermes(text: str) -> TextCalls:
    calls: list[ToolCall] = []
    for m in _HERMES.finditer(text):
        calls.extend(_marked(m.group(1), len(calls), "<tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>"))
    return TextCalls(_kept(_HERMES.sub("\n", text)), _numbered(calls), "hermes")


def _python_tag(text: str) -> TextCalls:
    before, _, after = text.partition(_PYTHON_TAG)
    body = _END_TOKENS.sub(" ", after).strip()
    form = '<|python_tag|>{"name": ..., "parameters": {...}}'
    values, rest = _json_sequence(body)
    if values:
        calls = [c for v in values for c in _calls_of(v, 0, form)]
        return TextCalls(_kept(before + "\n" + rest), _numbered(calls), "llama")
    python = _python_calls(body)
    if python is not None:
        return TextCalls(_kept(before), python, "llama")
    return TextCalls(_kept(before), [_broken(body, 0, f"the text after <|python_tag|> is neither JSON nor a call; "
                                                      f"write {form}")], "llama")


def _mistral(text: str) -> TextCalls:
    parts = text.split(_MISTRAL)
    kept = [parts[0]]
    calls: list[ToolCall] = []
    form = '[TOOL_CALLS][{"name": ..., "arguments": {...}}]'
    for part in parts[1:]:
        part = _END_TOKENS.sub(" ", part)
        named = _MISTRAL_NAMED.match(part)
        if named:  # [TOOL_CALLS]name[CALL_ID]id[ARGS]{...}
            values, rest = _json_sequence(part[named.end():], one=True)
            if values and isinstance(values[0], dict):
                cid = named.group(2) or f"call_{len(calls)}"
                arguments, error = _arguments(named.group(1), values[0])
                calls.append(ToolCall(id=cid, name=named.group(1), arguments=arguments, parse_error=error))
            else:
                rest = ""
                calls.append(ToolCall(id=f"call_{len(calls)}", name=named.group(1), parse_error=(
                    f"the arguments after [ARGS] of your call to '{named.group(1)}' are not a JSON object")))
            kept.append(rest)
            continue
        values, rest = _json_sequence(part, one=True)
        if values:
            calls.extend(_calls_of(values[0], len(calls), form))
            kept.append(rest)
        else:
            calls.append(_broken(part, len(calls), f"the text after [TOOL_CALLS] is not JSON; write {form}"))
    return TextCalls(_kept("\n".join(kept)), _numbered(calls), "mistral")


def _marked(body: str, start: int, form: str) -> list[ToolCall]:
    """The calls in one marked block (a JSON object, an array of them, or a Python-style dict)."""
    body = body.strip()
    if body.startswith("```"):  # a fence inside the tags
        body = body.removeprefix("```").removeprefix("json").removesuffix("```").strip()
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        value = _literal(body)
        if value is None:
            return [_broken(body, start, f"your tool call is not valid JSON ({_reason(exc)}); write {form}")]
    return _calls_of(value, start, form)


def _calls_of(value: Any, start: int, form: str) -> list[ToolCall]:
    """Calls from a decoded marked block: every item that is not a call object says why."""
    items = value if isinstance(value, list) else [value]
    out: list[ToolCall] = []
    for item in items:
        i = start + len(out)
        shape = _call_shape(item, strict=False)
        if shape is None:
            out.append(ToolCall(id=f"call_{i}", name=INVALID_CALL_NAME, parse_error=(
                f"a tool call must be a JSON object with a \"name\" and \"arguments\"; write {form}")))
            continue
        name, raw_args, cid = shape
        arguments, error = _arguments(name, raw_args)
        out.append(ToolCall(id=cid or f"call_{i}", name=name, arguments=arguments, parse_error=error))
    return out


# --- the unmarked forms: JSON counts only when it names an offered tool ---------------------------


def _fenced(text: str, tool_names: Collection[str]) -> TextCalls:
    calls: list[ToolCall] = []
    spans: list[tuple[int, int]] = []
    for m in _FENCE.finditer(text):
        body = m.group(2).strip()
        found = _known_calls(body, tool_names, len(calls))
        if found is None and (m.group(1) or "").lower() in ("tool_code", "python"):
            found = _python_calls(body, tool_names)
        if found:
            calls.extend(found)
            spans.append(m.span())
    return TextCalls(_kept(_cut(text, spans)), _numbered(calls), "fenced" if calls else None)


def _bare(text: str, tool_names: Collection[str]) -> TextCalls:
    """JSON objects (or arrays of them) anywhere in the text that name offered tools."""
    decoder = json.JSONDecoder()
    calls: list[ToolCall] = []
    spans: list[tuple[int, int]] = []
    uses_parameters = False
    pos = tries = 0
    while tries < _MAX_BARE_TRIES:
        m = _BARE_START.search(text, pos)
        if m is None:
            break
        tries += 1
        try:
            value, end = decoder.raw_decode(text, m.start())
        except (ValueError, RecursionError):
            pos = m.start() + 1
            continue
        found = _known_calls_of(value, tool_names, len(calls))
        if found:
            calls.extend(found)
            spans.append((m.start(), end))
            items = value if isinstance(value, list) else [value]
            uses_parameters = uses_parameters or any("parameters" in v for v in items if isinstance(v, dict))
        pos = end  # a JSON answer's inner objects are part of the answer, not calls
    if not calls:
        return TextCalls(text, [], None)
    return TextCalls(_kept(_cut(text, spans)), calls, "llama" if uses_parameters else "json")


def _known_calls(body: str, tool_names: Collection[str], start: int) -> list[ToolCall] | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return _known_calls_of(value, tool_names, start)


def _known_calls_of(value: Any, tool_names: Collection[str], start: int) -> list[ToolCall] | None:
    """Calls when ``value`` is a call object naming an offered tool, or an array of call objects at least
    one of which does (the others are then answered as unknown tools); else None."""
    items = value if isinstance(value, list) else [value]
    shapes = [_call_shape(item) for item in items]
    if not items or any(s is None for s in shapes) or not any(s[0] in tool_names for s in shapes if s):
        return None
    out = []
    for i, shape in enumerate(shapes):
        assert shape is not None
        name, raw_args, cid = shape
        arguments, error = _arguments(name, raw_args)
        out.append(ToolCall(id=cid or f"call_{start + i}", name=name, arguments=arguments, parse_error=error))
    return out


# --- pieces -----------------------------------------------------------------------------------


def _call_shape(item: Any, strict: bool = True) -> tuple[str, Any, str | None] | None:
    """(name, raw arguments, id) of a call object: ``{"name", "arguments"|"parameters"}``, or OpenAI's
    ``{"type": "function", "function": {...}}``; None for anything else. ``strict`` (unmarked JSON): no
    other keys either, for ``{"name": "Acme", "city": ...}`` is data, not a call."""
    if not isinstance(item, dict):
        return None
    inner = item.get("function")
    if isinstance(inner, dict) and isinstance(inner.get("name"), str):
        cid = item.get("id")
        item = inner
    else:
        cid = item.get("id")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    if strict and set(item) - {"name", "id", "type", *_ARG_KEYS}:
        return None
    raw_args = next((item[k] for k in _ARG_KEYS if k in item), None)
    return name.strip(), raw_args, cid if isinstance(cid, str) and cid else None


def _arguments(name: str, raw: Any) -> tuple[dict[str, Any], str | None]:
    """Arguments as an object, or why they are not one (a JSON string is decoded)."""
    if raw is None:
        return {}, None
    if isinstance(raw, str):
        if not raw.strip():
            return {}, None
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            return {}, f"the arguments of your call to '{name}' are not valid JSON ({_reason(exc)})"
    if not isinstance(raw, dict):
        return {}, f"the arguments of your call to '{name}' must be a JSON object, got {type(raw).__name__}"
    return dict(raw), None


def _json_sequence(text: str, one: bool = False) -> tuple[list[Any], str]:
    """JSON values at the start of ``text`` (separated by ``;`` or space; only the first if ``one``) and
    the text after them."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n;":
            pos += 1
        if pos >= len(text) or text[pos] not in "[{" or (one and values):
            break
        try:
            value, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            break
        values.append(value)
    return values, text[pos:] if values else text


def _python_calls(body: str, tool_names: Collection[str] | None = None) -> list[ToolCall] | None:
    """``f(a=1)``, ``tool.call(a=1)`` or ``[f(a=1), g(b=2)]`` with literal keyword arguments; None when
    ``body`` is not that (or, when ``tool_names`` is given, names none of them)."""
    if len(body) > _MAX_BODY_CHARS:
        return None
    try:
        tree = ast.parse(body.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    nodes = tree.elts if isinstance(tree, ast.List | ast.Tuple) else [tree]
    calls = []
    for i, node in enumerate(nodes):
        if not isinstance(node, ast.Call) or node.args:
            return None
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "call" and isinstance(func.value, ast.Name):
            name = func.value.id  # Llama's built-in form: brave_search.call(query="...")
        elif isinstance(func, ast.Name):
            name = func.id
        else:
            return None
        try:
            arguments = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg is not None}
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            return None
        calls.append(ToolCall(id=f"call_{i}", name=name, arguments=arguments))
    if not calls or (tool_names is not None and not any(c.name in tool_names for c in calls)):
        return None
    return calls


def _literal(body: str) -> Any:
    """A Python literal (``{'name': 'f', 'arguments': {...}}``: some models write dicts so), or None."""
    if len(body) > _MAX_BODY_CHARS or not body.startswith(("{", "[")):
        return None
    try:
        return ast.literal_eval(body)
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
        return None


def _broken(body: str, i: int, why: str) -> ToolCall:
    """A call that could not be read: named when its name can still be seen, never run."""
    m = _NAME_IN_TEXT.search(body[:_MAX_BODY_CHARS])
    return ToolCall(id=f"call_{i}", name=m.group(1) if m else INVALID_CALL_NAME, parse_error=why)


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _numbered(calls: list[ToolCall]) -> list[ToolCall]:
    """Calls with distinct ids (a model's own ids kept when they are distinct)."""
    ids = [c.id for c in calls]
    if len(set(ids)) == len(ids):
        return calls
    return [c.model_copy(update={"id": f"call_{i}"}) for i, c in enumerate(calls)]


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start])
        last = end
    out.append(text[last:])
    return "\n".join(out)


def _kept(text: str) -> str:
    """The text around the calls, without end-of-turn tokens or the blank lines the calls left."""
    text = _END_TOKENS.sub("", text)
    return _BLANK_LINES.sub("\n\n", "\n".join(line.rstrip() for line in text.splitlines())).strip()
