"""Tool calls written as text, as real model families write them: the sim's ``tool_format`` knob.

The data are the transcripts in ``transcripts/`` (one JSON file per family, written from its published
chat template and tool-call format): each names the *styles* the family writes calls in (how one call
is written, how calls are joined, what the reply around them looks like) and recorded *exchanges* (a
request and the raw text the model answers, with the calls a reader should find in it).

With ``tool_format`` set to a style's name, the simulated server answers every tool call in that
style, in the reply's text, with the API's ``tool_calls`` field empty; and a request whose last
message is that of a recorded exchange of that style gets the recorded text verbatim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from maos_testing.llm._sim_request import Reply, SimRequest

NATIVE = "native"


@dataclass(frozen=True)
class Style:
    """How one family writes tool calls in text (``$object``, ``$name``, ``$arguments``, ``$calls``)."""

    name: str
    family: str
    format: str  # the form a reader should report (the product's ToolCallFormat)
    arguments_key: str  # "arguments" or "parameters"
    call: str
    join: str
    reply: str

    def render(self, calls: list[tuple[str, dict[str, Any]]]) -> str:
        written = [Template(self.call).substitute(
            name=name, arguments=json.dumps(args),
            object=json.dumps({"name": name, self.arguments_key: args})) for name, args in calls]
        return Template(self.reply).substitute(calls=self.join.join(written))


@dataclass(frozen=True)
class Exchange:
    """One recorded request and the raw text the model answered."""

    family: str
    style: str
    title: str
    request: dict[str, Any] = field(repr=False)  # {"messages": [...], "tools": [...]} as sent to the API
    response: str = field(repr=False)
    expect: dict[str, Any] = field(repr=False)  # {"format", "content", "calls": [{"name", "arguments", ...}]}


@cache
def _families() -> tuple[dict[str, Any], ...]:
    folder = resources.files("maos_testing.llm") / "transcripts"
    return tuple(json.loads(f.read_text(encoding="utf-8"))
                 for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.name.endswith(".json"))


def styles() -> dict[str, Style]:
    """Every style of every family, by name."""
    return {s["name"]: Style(family=fam["family"], **s) for fam in _families() for s in fam["styles"]}


def exchanges(style: str | None = None) -> list[Exchange]:
    """The recorded exchanges (of one style)."""
    return [Exchange(family=fam["family"], **t) for fam in _families() for t in fam["transcripts"]
            if style is None or t["style"] == style]


def check(tool_format: str) -> None:
    if tool_format != NATIVE and tool_format not in styles():
        raise ValueError(f"tool_format must be '{NATIVE}' or one of {', '.join(sorted(styles()))}, "
                         f"not {tool_format!r}")


def as_text(tool_format: str, req: SimRequest, reply: Reply) -> Reply:
    """``reply`` as a model of ``tool_format``'s family writes it: a recorded answer to this very request,
    else its tool call written in the style's text (the native field stays empty); other replies as they are."""
    if tool_format == NATIVE or not req.tools:
        return reply
    last = req.messages[-1] if req.messages else ("", "")
    for ex in exchanges(tool_format):
        message = ex.request["messages"][-1]
        if (message["role"], message["content"]) == last:
            return Reply("tool_call" if ex.expect["calls"] else "final", ex.response, slow_s=reply.slow_s)
    if reply.tool_name is None:
        return reply
    text = styles()[tool_format].render([(reply.tool_name, reply.tool_args or {})])
    return Reply("tool_call", text, slow_s=reply.slow_s)
