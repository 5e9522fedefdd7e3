"""The simulated planner: a plan (or a decision's plan) computed from the request, matching the
JSON schema it was asked for; fan-out and failure markers shape it (see ``_sim_request``)."""

from __future__ import annotations

import json
import re
from functools import partial
from typing import Any

from maos_testing.llm import _sim_chat as chat
from maos_testing.llm._sim_request import (
    _BROKEN,
    _FAIL_STEP,
    _FANOUT,
    _INVALID,
    _PER_ITEM,
    _SLOW,
    _USE,
    DEFAULT_AGENTS,
    SimRequest,
    strip_markers,
)

# --- schemas -----------------------------------------------------------------------------------


def _resolve(node: Any, root: dict[str, Any]) -> dict[str, Any]:
    """Follow local ``$ref`` pointers (``#/$defs/X``); unwrap a lone ``allOf``."""
    seen = 0
    while isinstance(node, dict) and seen < 32:
        seen += 1
        if "$ref" in node and isinstance(node["$ref"], str) and node["$ref"].startswith("#/"):
            target: Any = root
            for part in node["$ref"][2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            node = target
        elif isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
            node = node["allOf"][0]
        else:
            return node
    return node if isinstance(node, dict) else {}


def _is_plan_schema(schema: dict[str, Any], name: str | None) -> bool:
    return name == "Plan" or _resolve(schema, schema).get("title") == "Plan"


def _plan_shape(schema: dict[str, Any]) -> tuple[list[str], int | None]:
    """Agent names from the steps' ``agent`` enum, and the steps' ``maxItems``."""
    root = _resolve(schema, schema)
    steps = _resolve(root.get("properties", {}).get("steps", {}), schema)
    items = _resolve(steps.get("items", {}), schema)
    agent = _resolve(items.get("properties", {}).get("agent", {}), schema)
    enum = agent.get("enum")
    names = [str(a) for a in enum] if isinstance(enum, list) and enum else list(DEFAULT_AGENTS)
    max_items = steps.get("maxItems")
    return names, max_items if isinstance(max_items, int) and max_items > 0 else None


# --- plans -------------------------------------------------------------------------------------

# (pattern, agent, instruction prefix): the prefixes name the tool a sub-agent should pick.
_RULES = (
    (r"\bleads?\b", "leads", "Find leads for"),
    (r"\bemails?\b|\bfollow[ -]?up|\binbox\b|\btriage\b|\bgmail\b|\brepl(?:y|ies)\b", "email", "Draft an email for"),
    (r"\bcalendar\b|\bmeetings?\b|\bcalls?\b|\bbook|\bslot\b|\binvite\b", "calendar", "Draft an event for"),
    (r"\bsms\b|\btext messages?\b|\btexting\b|\btext (?:them|him|her|everyone)\b", "texting", "Draft a text for"),
    (r"\bphone\b", "calling", "Draft a call for"),
    (r"\bsops?\b|\bprocedures?\b", "sops", "Search documents for the procedure in"),
    (r"\bresearch", "research", "Research notes on"),
    (r"\bsummar|\bdrafts?\b|\bwrite\b|\bwriting\b", "writing", "Write and save a draft document for"),
)


def _plan_text(req: SimRequest) -> str:
    current = chat.from_request(req.messages)  # earlier turns are context, not the request
    users = [text for role, text in current if role == "user"]
    # markers act from the request (and repairs), never from data blocks (memory, past plans, the
    # last run): a past plan's "[use x]" copied into each new plan grew every later one
    everything = "\n".join(t for t in users if not t.startswith(chat.DATA_PREFIX))
    prior = sum(role == "assistant" for role, _ in current)
    broken = _BROKEN.search(everything)
    if broken and (broken.group(1) == "always" or prior < int(broken.group(1))):
        return '{"goal": "' + strip_markers(users[0] if users else "")[:40] + '", "steps": ['
    request = chat.resolve(strip_markers(users[0] if users else ""), req.messages)
    invalid = _INVALID.search(everything)
    if invalid and (invalid.group(1) is None or prior < int(invalid.group(1))):
        bad = {"id": "s1", "agent": "emial", "instruction": request or "do it", "depends_on": ["s9"]}
        return json.dumps({"goal": request, "steps": [bad]})
    agents, max_items = _plan_shape(req.schema or {})
    slow = _SLOW.search(everything)
    carry = f" {slow.group(0)}" if slow else ""
    carry += "".join(f" {m.group(0)}" for m in _USE.finditer(everything))
    fail = _FAIL_STEP in everything
    fanout = _FANOUT.search(everything)
    only = [fanout.group(2)] if fanout and fanout.group(2) in agents else agents
    then = fanout.group(3) if fanout and fanout.group(3) in agents else None
    steps = _fanout_steps(int(fanout.group(1)), only, request, then) if fanout else _keyword_steps(agents, request)
    if max_items is not None:
        steps = _clip(steps, max(1, max_items - 1) if fail and max_items > 1 else max_items)
    for step in steps:
        step["instruction"] += carry
    if fail:
        steps[0]["instruction"] += f" {_FAIL_STEP}"
        if max_items is None or len(steps) < max_items:
            follow = "writing" if "writing" in agents else agents[0]
            steps.append({"id": _free_id(steps), "agent": follow, "depends_on": [steps[0]["id"]],
                          "instruction": f"Write and save a draft document from the result of {steps[0]['id']}"
                                         f" for: {request}{carry}"})
    return json.dumps({"goal": request or "Answer the request", "steps": steps})


def _fanout_steps(n: int, agents: list[str], request: str, then: str | None = None) -> list[dict[str, Any]]:
    """N independent steps; with ``then``, each followed by a step of that type depending on it."""
    steps: list[dict[str, Any]] = []

    def nth(m: re.Match[str], i: int) -> str:
        values = m.group(2).split("|")
        return f"{m.group(1)}={values[(i - 1) % len(values)]}"

    for i in range(1, max(1, n) + 1):
        item = _PER_ITEM.sub(partial(nth, i=i), request)
        steps.append({"id": f"s{i}", "agent": agents[(i - 1) % len(agents)],
                      "instruction": f"Handle item {i} of {n} for: {item}", "depends_on": []})
        if then is not None:
            steps.append({"id": f"t{i}", "agent": then, "depends_on": [f"s{i}"],
                          "instruction": f"Act on the result of s{i} (item {i} of {n}) for: {item}"})
    return steps


def _keyword_steps(agents: list[str], request: str) -> list[dict[str, Any]]:
    lowered = request.lower()
    steps: list[dict[str, Any]] = []
    for pattern, agent, prefix in _RULES:
        if agent in agents and re.search(pattern, lowered) and all(s["agent"] != agent for s in steps):
            steps.append({"id": f"s{len(steps) + 1}", "agent": agent,
                          "instruction": f"{prefix}: {request}", "depends_on": []})
    if not steps:
        agent = "writing" if "writing" in agents else agents[0]
        return [{"id": "s1", "agent": agent, "instruction": f"Write and save a draft document for: {request}",
                 "depends_on": []}]
    ids = {s["agent"]: s["id"] for s in steps}
    for step in steps:
        if step["agent"] in ("email", "texting", "calling") and "leads" in ids:
            step["depends_on"] = [ids["leads"]]
        elif step["agent"] == "writing":
            step["depends_on"] = [s["id"] for s in steps if s is not step]
    return steps


def _clip(steps: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    kept = steps[:limit]
    ids = {s["id"] for s in kept}
    for step in kept:
        step["depends_on"] = [d for d in step["depends_on"] if d in ids]
    return kept


def _free_id(steps: list[dict[str, Any]]) -> str:
    ids = {s["id"] for s in steps}
    n = len(steps) + 1
    while f"s{n}" in ids:
        n += 1
    return f"s{n}"
