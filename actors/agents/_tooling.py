"""Typed tools: a JSON schema derived from an async function's signature and docstring.

A tool is ``async def name(ctx: ToolContext, a: str, b: int = 1) -> object`` with a Google-style
docstring: the first paragraph describes the tool, ``Args:`` describes every parameter. The
arguments are validated by a pydantic model built from the signature; the schema the model sees
is that model's JSON schema, trimmed of noise. ``invoke`` never raises for what a model can fix:
bad arguments and tool failures come back as ``error: ...`` observations.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from actors.agents.context import ToolContext
from core.chat_schemas import ToolSpec
from core.errors import IntegrationUnavailable, ToolError

ToolFunction = Callable[..., Awaitable[object]]
MAX_OBSERVATION_CHARS = 4000

_log = structlog.get_logger(__name__)
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Yields|Raises|Examples?|Notes?):\s*$")
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True)
class Tool:
    """A callable tool: what the model sees (name, description, parameters) and what runs."""

    name: str
    description: str
    parameters: dict[str, Any] = field(repr=False)
    fn: ToolFunction = field(repr=False)
    arguments: type[BaseModel] = field(repr=False)

    @classmethod
    def from_function(cls, fn: ToolFunction, name: str | None = None) -> Tool:
        """Build a tool from a typed async function whose first parameter is the ToolContext."""
        tool_name = name if name is not None else fn.__name__
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"tool '{tool_name}' must be an async function")
        description, arg_docs = parse_docstring(inspect.getdoc(fn) or "")
        if not description:
            raise TypeError(f"tool '{tool_name}' needs a docstring: its first paragraph is the description")
        hints = typing.get_type_hints(fn, include_extras=True)
        params = list(inspect.signature(fn).parameters.values())
        if not params or hints.get(params[0].name) is not ToolContext:
            raise TypeError(f"tool '{tool_name}': the first parameter must be 'ctx: ToolContext'")
        fields: dict[str, Any] = {}
        for p in params[1:]:
            if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                raise TypeError(f"tool '{tool_name}': parameter '{p.name}' must be a plain named parameter")
            if p.name not in hints:
                raise TypeError(f"tool '{tool_name}': parameter '{p.name}' needs a type annotation")
            if p.name not in arg_docs:
                raise TypeError(f"tool '{tool_name}': parameter '{p.name}' is not described under 'Args:'")
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[p.name] = (hints[p.name], Field(default, description=arg_docs[p.name]))
        model = create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
        return cls(tool_name, description, _model_friendly(model.model_json_schema()), fn, model)

    def spec(self) -> ToolSpec:
        """The tool as the LLM request carries it."""
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(first paragraph joined on one line, {parameter: description}) from a Google-style docstring."""
    lines = doc.expandtabs().splitlines()
    first: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line.strip()):
            break
        first.append(line.strip())
    args: dict[str, str] = {}
    in_args, entry_indent, current = False, -1, ""
    for line in lines:  # inspect.getdoc dedents: section headers sit at column 0
        stripped, indent = line.strip(), len(line) - len(line.lstrip())
        if stripped and indent == 0:
            in_args, entry_indent, current = stripped in ("Args:", "Arguments:", "Parameters:"), -1, ""
            continue
        if not in_args or not stripped:
            continue
        if entry_indent < 0:
            entry_indent = indent
        match = _ARG_LINE.match(stripped)
        if indent == entry_indent and match:
            current = match.group(1).lstrip("*")
            args[current] = match.group(2).strip()
        elif indent > entry_indent and current:
            args[current] = f"{args[current]} {stripped}"
    return " ".join(first), args


def _model_friendly(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop titles, collapse ``X | None`` to ``X`` (such parameters are optional anyway)."""

    def clean(node: Any) -> Any:
        if isinstance(node, list):
            return [clean(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: clean(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
        variants = out.get("anyOf")
        if isinstance(variants, list) and {"type": "null"} in variants:
            rest = [v for v in variants if v != {"type": "null"}]
            if len(rest) == 1:
                del out["anyOf"]
                out = {**rest[0], **out}
                if out.get("default", 0) is None:
                    del out["default"]
        return out

    cleaned: dict[str, Any] = clean(schema)
    cleaned["additionalProperties"] = False
    cleaned.setdefault("properties", {})
    return cleaned


def _describe_errors(tool: Tool, exc: ValidationError) -> str:
    allowed = ", ".join(tool.parameters.get("properties", {})) or "none"
    problems: list[str] = []
    for err in exc.errors()[:6]:
        loc = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(err["loc"]))
        if err["type"] == "missing":
            problems.append(f"missing required argument '{loc}'")
        elif err["type"] == "extra_forbidden":
            problems.append(f"unknown argument '{loc}' (arguments: {allowed})")
        else:
            problems.append(f"argument '{loc}': {err['msg']}")
    return f"error: bad arguments for tool '{tool.name}': " + "; ".join(problems)


def observation(result: object) -> str:
    """What the model reads: strings as they are, anything else as compact JSON; capped in size."""
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    text = result if isinstance(result, str) else json.dumps(result, separators=(",", ":"), ensure_ascii=False, default=str)
    if len(text) > MAX_OBSERVATION_CHARS:
        text = (
            text[:MAX_OBSERVATION_CHARS]
            + f" … [truncated: {MAX_OBSERVATION_CHARS} of {len(text)} characters shown; narrow the request]"
        )
    return text


async def invoke(tool: Tool, ctx: ToolContext, arguments: dict[str, Any]) -> str:
    """Validate ``arguments`` and run the tool. Never raises for bad arguments or tool failures."""
    if not isinstance(arguments, dict):
        return f"error: arguments for tool '{tool.name}' must be a JSON object, got {type(arguments).__name__}"
    try:
        parsed = tool.arguments.model_validate(arguments)
    except ValidationError as exc:
        return _describe_errors(tool, exc)
    kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
    try:
        result = await tool.fn(ctx, **kwargs)
    except ToolError as exc:
        return f"error: {tool.name}: {exc}"
    except IntegrationUnavailable:
        raise  # not the model's to fix: the step waits until a person reconnects
    except Exception as exc:  # a tool bug must not kill the sub-agent; the model may try another way
        _log.warning("tool_failed", tool=tool.name, task_id=ctx.task_id, error_type=type(exc).__name__)
        return f"error: tool '{tool.name}' failed ({type(exc).__name__}: {exc})"
    return observation(result)
