"""The simulated model in a conversation: which user message is the request, what "the second one"
refers to, and whether a message needs work at all (the master's answer-or-plan decision).

The master's messages are: the system prompt, earlier turns (user and assistant), the request, then
a user message of data blocks (``Data from <source>``: the last run, memory, examples); a repair adds
the invalid reply and ``That plan|reply is invalid: …``. The request is the last user message that
is neither data nor a repair. Markers (``[fanout N]`` …) steer from the request and what follows
it, never from earlier turns nor from the last run's listing (which quotes the last request).

A decision is answered like this: ``[ask]`` in the request → a question back; a greeting or thanks
→ a greeting; "what can you do" → the agent types it was given; "what did you (just) do" → the
last run's request and the first line of the master's last reply; anything else → the plan the
planner would write, with ``"mode": "plan"``. "the first/second/… one" and "the last one" in a request
are spelled out from the numbered steps of the last run's listing, as a model that read it would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

DATA_PREFIX = _DATA = "Data from "
_LAST_RUN = re.compile(r'<data source="the last run[^"]*">\n(.*?)\n</data>', re.DOTALL)
_REPAIR = re.compile(r"^That (?:plan|reply) is invalid:")
_STEP_LINE = re.compile(r"^\d+\. \S+ \([^)]*\): (.*)$", re.MULTILINE)
_GREETING = re.compile(r"^(?:hi|hello|hey|good (?:morning|afternoon|evening)|thanks|thank you)\b", re.IGNORECASE)
_ABOUT_SELF = re.compile(r"\bwhat (?:can|do) you do\b|\bwho are you\b", re.IGNORECASE)
_ABOUT_LAST = re.compile(r"\bwhat (?:did|have) you (?:just )?(?:do|done)\b", re.IGNORECASE)
_REFERENCE = re.compile(r"\bthe (first|second|third|fourth|fifth|last) one\b", re.IGNORECASE)
_ORDINAL = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "last": -1}
ASK = "[ask]"

Messages = list[tuple[str, str]]


def is_decision_schema(schema: dict[str, Any], name: str | None) -> bool:
    return name == "Decision" or schema.get("title") == "Decision"


def request_at(messages: Messages) -> int:
    """Index of the request: the last user message that is neither a data block nor a repair (-1: none)."""
    for i in range(len(messages) - 1, -1, -1):
        role, text = messages[i]
        if role == "user" and not text.startswith(_DATA) and not _REPAIR.match(text):
            return i
    return -1


def from_request(messages: Messages) -> Messages:
    """The request and what follows it, the last run's listing taken out (it quotes the last request)."""
    at = request_at(messages)
    return [(role, _LAST_RUN.sub("", text)) for role, text in messages[max(at, 0):]]


def resolve(request: str, messages: Messages) -> str:
    """``request`` with "the second one" (…) spelled out from the last run's numbered steps."""
    found = _REFERENCE.search(request)
    steps = _last_run_steps(messages)
    if found is None or not steps:
        return request
    n = _ORDINAL[found.group(1).lower()]
    if n > len(steps):
        return request
    return f"{request} (the {found.group(1).lower()} one: {steps[n - 1 if n > 0 else -1]})"


def _last_run_steps(messages: Messages) -> list[str]:
    for role, text in messages:
        block = _LAST_RUN.search(text) if role == "user" else None
        if block:
            return [m.group(1) for m in _STEP_LINE.finditer(block.group(1))]
    return []


def decision(messages: Messages, agents: list[str], plan: Callable[[], str]) -> str:
    """The decision's JSON for the master's ``messages``; ``plan``: the plan the planner would write."""
    at = request_at(messages)
    request = messages[at][1].strip() if at >= 0 else ""
    if ASK in request:
        return _reply("ask", "Which ones do you mean, and should I send them or only draft them?")
    if _GREETING.match(request) and len(request.split()) <= 6:
        return _reply("answer", "Hello! Tell me what you need done and I will plan it.")
    if _ABOUT_SELF.search(request):
        return _reply("answer", f"I plan work and hand it to sub-agents: {', '.join(agents)}.")
    if _ABOUT_LAST.search(request):
        return _reply("answer", _what_was_done(messages[:max(at, 0)], messages[at + 1:]))
    text = plan()
    try:
        data = json.loads(text)
    except ValueError:
        return text  # a broken plan ([broken-json]) stays broken
    return json.dumps({"mode": "plan", "reply": "", **data}) if isinstance(data, dict) else text


def _what_was_done(before: Messages, after: Messages) -> str:
    said = [text for role, text in before if role == "assistant"]
    run = next((m.group(1) for _, text in after for m in [_LAST_RUN.search(text)] if m), "")
    asked = next((line for line in run.splitlines() if line.startswith("Request: ")), "")
    if not said and not asked:
        return "Nothing yet in this conversation."
    first = said[-1].strip().splitlines()[0] if said else ""
    return " ".join(x for x in (f"Last time you asked: {asked.removeprefix('Request: ')}." if asked else "",
                                f"I answered: {first}" if first else "") if x)


def _reply(mode: str, text: str) -> str:
    return json.dumps({"mode": mode, "reply": text, "goal": "", "steps": []})
