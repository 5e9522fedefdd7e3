"""The simulated sub-agent's tool calls: which tool it picks for an instruction, its arguments
(filled from ``name=value`` in the request, or made up from the schema), and the calls it is fooled
into making by instructions written in a tool's result."""

from __future__ import annotations

import json
import re
from typing import Any

from maos_testing.llm._sim_plans import _resolve
from maos_testing.llm._sim_request import (
    _ASSIGNED,
    _EMAIL,
    _PHRASE_NAMES,
    _QUOTED,
    _TAGGED,
    _USE,
    strip_markers,
)

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
