"""The simulated LLM's request and reply, protocol-neutral, and the markers in user messages that
steer it (see ``_sim_replies``, which computes the reply)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

ReplyKind = Literal["plan", "tool_call", "final", "chat", "error"]
WireProtocol = Literal["ollama", "openai"]
Obey = Literal["last", "all"]

DEFAULT_AGENTS = ("leads", "email", "calendar", "sops", "texting", "calling", "research", "writing")

_FANOUT = re.compile(r"\[fanout (\d+)(?: ([a-z_]+)(?:>([a-z_]+))?)?\]")
_SLOW = re.compile(r"\[slow (\d+(?:\.\d+)?)\]")
_FAIL_STEP = "[fail-step]"
_BROKEN = re.compile(r"\[broken-json (\d+|always)\]")
_INVALID = re.compile(r"\[invalid-plan(?: (\d+))?\]")
_USE = re.compile(r"\[use (\w+)\]")
_ASSIGNED = re.compile(r"\b(\w+)=([^\s,;\]]+)")
_QUOTED = re.compile(r'\b(\w+)=("(?:[^"\\]|\\.)*")')
_PER_ITEM = re.compile(r"\b(\w+)=([^\s,;\]|\"]+(?:\|[^\s,;\]|\"]+)+)")
_ANY_MARKER = re.compile(r"\[(?:fanout|slow|fail-step|broken-json|invalid-plan|use)[^\]]*\]")
_TASK_ID = re.compile(r"task_id: (\S+)")
_TAGGED = re.compile(r"\btag(?:ged)? ['\"]?([\w-]+)", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_FILLER = ("and", "the", "work", "is", "complete", "with", "all", "details", "noted", "for", "review")
_PHRASE_NAMES = frozenset({"query", "text", "title", "subject", "body", "note", "notes", "content",
                           "reason", "topic", "message", "script", "agenda", "instruction", "question"})


@dataclass(frozen=True)
class SimRequest:
    """A chat request with the protocol details stripped."""

    protocol: WireProtocol
    model: str
    messages: list[tuple[str, str]]  # (role, text content)
    tools: list[dict[str, Any]] = field(default_factory=list)  # OpenAI "function" objects
    schema: dict[str, Any] | None = None
    schema_name: str | None = None
    json_mode: bool = False  # JSON asked for without a schema
    stream: bool = False
    include_usage: bool = False

    def texts(self, role: str | None = None) -> list[str]:
        return [c for r, c in self.messages if role is None or r == role]

    def last(self, role: str) -> str:
        found = self.texts(role)
        return found[-1] if found else ""


@dataclass(frozen=True)
class Reply:
    """The model's answer: text, one tool call, or an HTTP error."""

    kind: ReplyKind
    text: str = ""
    tool_name: str | None = None
    tool_args: dict[str, Any] | None = None
    status: int = 200
    slow_s: float = 0.0

    def tokens(self) -> list[str]:
        """Output split into tokens (words with their trailing space); a tool call counts its JSON."""
        source = self.text if self.tool_name is None else f"{self.tool_name} {json.dumps(self.tool_args)}"
        return re.findall(r"\s*\S+\s*", source) or [""]


def word_count(text: str) -> int:
    return len(text.split())


def task_id_of(req: SimRequest) -> str | None:
    for text in req.texts("system"):
        m = _TASK_ID.search(text)
        if m:
            return m.group(1)
    return None


def slow_seconds(req: SimRequest) -> float:
    for text in req.texts():
        m = _SLOW.search(text)
        if m:
            return float(m.group(1))
    return 0.0


def strip_markers(text: str) -> str:
    return " ".join(_ANY_MARKER.sub(" ", text).split())


def pad(text: str, n_tokens: int) -> str:
    """Exactly ``n_tokens`` words: cut, or padded with filler words."""
    words = text.split()[: max(1, n_tokens)]
    i = 0
    while len(words) < n_tokens:
        words.append(_FILLER[i % len(_FILLER)])
        i += 1
    return " ".join(words)
