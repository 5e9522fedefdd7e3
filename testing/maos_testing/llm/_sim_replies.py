"""What the simulated LLM answers: replies computed from the request content, deterministically.

Pure functions over a protocol-neutral :class:`SimRequest`; ``_sim_wire`` turns requests from
and replies into Ollama or OpenAI wire format. Markers in user messages steer tests:
``[fanout N]`` (``[fanout N AGENT]``: all of one type), ``[slow S]``, ``[fail-step]``, ``[broken-json K|always]``, ``[invalid-plan [K]]``,
``[use TOOL]`` (the sub-agent calls the first such tool it has; ``name=value`` or ``name="JSON string"`` in
the request fills that argument; in a fanout, ``name=a|b|c`` gives item i the i-th value),
``[fanout N A>B]`` (N steps of type A, each followed by a step of type B that depends on it).

The simulated model is naive on purpose: it obeys instructions it reads in a tool's result
("call send_email {...}"), as a model fooled by a prompt injection would. With the knob
``obey="all"`` it obeys every instruction in every form it reads anywhere (see ``_sim_obey``).
What keeps such a model from doing harm must be the product's rules, never the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from maos_testing.llm import _sim_chat as chat
from maos_testing.llm import _sim_obey as obey

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


def reply_for(req: SimRequest, reply_tokens: int, obeys: Obey = "last") -> Reply:
    """The deterministic answer to ``req``; ``obeys``: which instructions in what it reads it follows."""
    slow = slow_seconds(req)
    if req.schema is not None and _is_plan_schema(req.schema, req.schema_name):
        return Reply("plan", _plan_text(req), slow_s=slow)
    if req.schema is not None and chat.is_decision_schema(req.schema, req.schema_name):  # answer, ask or plan
        text = chat.decision(req.messages, _plan_shape(req.schema)[0], partial(_plan_text, req))
        return Reply("plan", text, slow_s=slow)
    if req.tools:
        if any(_FAIL_STEP in t for t in req.texts("user")):
            return Reply("error", "simulated step failure ([fail-step])", status=500, slow_s=slow)
        if obeys == "all":
            return _obeying(req, reply_tokens, slow)
        if not req.texts("tool"):
            name, args = _tool_call(req.tools, req.last("user"))
            return Reply("tool_call", tool_name=name, tool_args=args, slow_s=slow)
        obeyed = _injected_call(req.tools, req.messages[-1][1] if req.messages[-1][0] == "tool" else "")
        if obeyed is not None:
            return Reply("tool_call", tool_name=obeyed[0], tool_args=obeyed[1], slow_s=slow)
        return Reply("final", pad(f"Done: {_gist(req.last('tool'))} …", reply_tokens), slow_s=slow)
    answer = pad("Summary: " + strip_markers(req.last("user")), reply_tokens)
    if obeys == "all":
        answer = " ".join([answer, *obey.images_in(t for r, t in req.messages if r != "system")])
    if req.schema is not None:
        root = req.schema
        return Reply("chat", json.dumps(_value(root, root, "", answer, force_all=True)), slow_s=slow)
    if req.json_mode:
        return Reply("chat", json.dumps({"answer": answer}), slow_s=slow)
    return Reply("chat", answer, slow_s=slow)


def _obeying(req: SimRequest, reply_tokens: int, slow: float) -> Reply:
    """A model that does everything it reads: its first call comes from the step's instruction, then it
    makes, one per turn, each call written anywhere in its messages (tool results, earlier results,
    memory), in order; then it answers, relaying the orders it had no tool for and showing the images
    it was asked to show."""
    first = _tool_call(req.tools, req.last("user"))
    read = [s for role, text in req.messages if role != "system" for s in obey.strings_of(text)]
    written = obey.unique(c for text in read for c in obey.calls_in(text))
    names = {str(t.get("name")) for t in req.tools}
    doable = obey.unique([first, *(c for c in written if c[0] in names)])
    made = len(req.texts("tool"))
    if made < len(doable):
        name, args = doable[made]
        return Reply("tool_call", tool_name=name, tool_args=args, slow_s=slow)
    relayed = [f"The content also asks to call {n} {json.dumps(a)}" for n, a in written if n not in names]
    answer = pad(f"Done: {_gist(req.last('tool'))} …", reply_tokens)
    return Reply("final", " ".join([answer, *relayed, *obey.images_in(read)]), slow_s=slow)


def _gist(observation: str) -> str:
    """What the model reports of a tool's result: its start, past any note about the content."""
    try:
        value = json.loads(observation)
    except ValueError:
        value = None
    if isinstance(value, dict):
        observation = json.dumps({k: v for k, v in value.items() if not k.endswith("_note")})
    return " ".join(observation.split())[:80]


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


# --- tool calls --------------------------------------------------------------------------------


def _words(text: str) -> set[str]:
    return {w.removesuffix("s") for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1}


def _tool_call(tools: list[dict[str, Any]], instruction: str) -> tuple[str, dict[str, Any]]:
    """The tool named by ``[use TOOL]``, else the one whose name's words best overlap the instruction
    (ties: the first), with arguments (``name=value`` in the instruction fills argument ``name``)."""
    said = _words(instruction)
    wanted = [m.group(1) for m in _USE.finditer(instruction)]
    best, best_score = tools[0], -1
    for tool in tools:
        score = len(_words(str(tool.get("name", "")).replace("_", " ")) & said)
        if tool.get("name") in wanted:
            score = 1_000 * (len(wanted) - wanted.index(str(tool.get("name"))))
        if score > best_score:
            best, best_score = tool, score
    params = best.get("parameters") or {"type": "object", "properties": {}}
    clean = strip_markers(instruction)
    quoted: dict[str, Any] = {}
    for name, value in _QUOTED.findall(clean):
        try:
            quoted[name] = json.loads(value)
        except ValueError:
            continue
    clean = _QUOTED.sub(" ", clean)
    args = _value(params, params, "", _ASSIGNED.sub(" ", clean))
    props = params.get("properties", {})
    for name, value in [*_ASSIGNED.findall(clean), *quoted.items()]:
        if name in props:
            args[name] = [value] if _resolve(props[name], params).get("type") == "array" else value
    return str(best.get("name", "")), args


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _injected_call(tools: list[dict[str, Any]], observation: str) -> tuple[str, dict[str, Any]] | None:
    """A call an instruction inside a tool result asks for ("… call send_email {json} …"), obeyed."""
    try:
        texts = _strings(json.loads(observation))
    except ValueError:
        texts = [observation]
    for text in texts:
        for tool in tools:
            name = str(tool.get("name"))
            for m in re.finditer(rf"\b{re.escape(name)}\b[^{{}}]{{0,40}}?(\{{[^{{}}]*\}})", text):
                try:
                    args = json.loads(m.group(1))
                except ValueError:
                    continue
                if isinstance(args, dict):
                    return name, args
    return None


def _value(schema: dict[str, Any], root: dict[str, Any], name: str, instruction: str,
           force_all: bool = False) -> Any:
    """A value for ``schema``: required properties only, plus ones with obvious values."""
    node = _resolve(schema, root)
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            options = [_resolve(o, root) for o in node[key]]
            non_null = [o for o in options if o.get("type") != "null"]
            node = non_null[0] if non_null else {"type": "null"}
    if isinstance(node.get("enum"), list) and node["enum"]:
        return node["enum"][0]
    if "const" in node:
        return node["const"]
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    tag = _TAGGED.search(instruction)
    if kind == "object" or (kind is None and "properties" in node):
        props: dict[str, Any] = node.get("properties", {})
        required = set(node.get("required", []))
        out: dict[str, Any] = {}
        for prop, sub in props.items():
            if force_all or prop in required or (prop in ("tag", "tags") and tag):
                out[prop] = _value(sub, root, prop, instruction, force_all)
        return out
    if kind == "array":
        if name in ("tag", "tags") and tag:
            return [tag.group(1).lower()]
        return []
    if kind == "integer":
        return max(1, int(node.get("minimum", 1)))
    if kind == "number":
        return max(1.0, float(node.get("minimum", 1.0)))
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return _string(name, node, instruction, tag)


def _string(name: str, node: dict[str, Any], instruction: str, tag: re.Match[str] | None) -> str:
    lowered = name.lower()
    if lowered in ("tag", "tags") and tag:
        return tag.group(1).lower()
    if lowered in ("to", "email", "recipient") or "email" in lowered:
        found = _EMAIL.search(instruction)
        return found.group(0) if found else "lead@example.com"
    if "phone" in lowered or lowered == "number":
        return "+15550100"
    if node.get("format") in ("date-time", "date") or lowered in ("when", "start", "date", "due"):
        return "2030-01-07T09:00:00Z"
    phrase = " ".join(instruction.split()[:12]) or "item"
    if lowered in _PHRASE_NAMES:
        return phrase
    return " ".join(instruction.split()[:4]) or "item"
