"""The plan contract: the JSON schema the model must fill, and validation of what it returns."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from core.budget import Budget
from core.errors import PlanError
from core.schemas import Plan

_BASE_SCHEMA = Plan.model_json_schema()


def plan_schema(agent_names: Sequence[str], max_steps: int, max_deps: int = 8, small_model: bool = False) -> dict[str, Any]:
    """Plan's JSON schema with the agent types as an enum and bounded arrays.

    Bounds matter for small models under a grammar: an unbounded array can loop forever. For a
    small model (``small_model``) step ids are patterned ``s1..sN`` so dependencies can only name
    real steps, and free text is kept grammar-safe (no raw control characters, bounded length).
    """
    schema = copy.deepcopy(_BASE_SCHEMA)
    step = schema["$defs"]["PlanStep"]
    step["properties"]["agent"]["enum"] = list(agent_names)
    step["properties"]["depends_on"]["maxItems"] = max_deps
    step["properties"]["id"].pop("maxLength", None)
    schema["properties"]["steps"]["minItems"] = 1
    schema["properties"]["steps"]["maxItems"] = max_steps
    if small_model:
        ids = f"^s[1-{min(max_steps, 9)}]$"
        step["properties"]["id"]["pattern"] = ids
        step["properties"]["depends_on"].update(maxItems=min(max_deps, 3), items={"type": "string", "pattern": ids})
        schema = grammar_safe_schema(schema)
    return schema


def grammar_safe_schema(schema: dict[str, Any], max_len: int = 200) -> dict[str, Any]:
    """A copy of ``schema`` whose free-text strings the embedded server's grammar keeps valid.

    llama.cpp's schema grammar lets a string hold raw control characters (a bare newline), which
    strict JSON parsers reject, and lets it run until ``max_tokens`` cuts the JSON short. Each
    string without its own ``pattern``/``enum``/``const``/``format`` gets a pattern that forbids
    control characters, quotes and backslashes, bounded by ``maxLength`` (else ``max_len``).
    """

    def fix(node: Any) -> Any:
        if isinstance(node, list):
            return [fix(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: fix(value) for key, value in node.items()}
        free_text = not any(k in out for k in ("pattern", "enum", "const", "format", "$ref"))
        if out.get("type") == "string" and free_text:
            low = int(out.get("minLength", 0))
            high = int(out.get("maxLength", max_len))
            out["pattern"] = f'^[^\\x00-\\x1f"\\\\]{{{low},{max(low, high)}}}$'
        return out

    result = fix(schema)
    assert isinstance(result, dict)
    return result


def parse_plan(text: str) -> Plan:
    """Parse the model's reply as a Plan; the error says what is wrong in words a model can use."""
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text[text.find("{"):] if "{" in text else text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"the reply is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'plan'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise PlanError(f"the JSON does not match the plan schema: {problems}") from None


def validate_plan(plan: Plan, known_agents: Sequence[str], budget: Budget) -> Plan:
    """Known agent types, unique ids, dependencies that exist, no cycles, within budget.

    A step naming itself among its dependencies (small models do) can only mean "none": that entry
    is dropped rather than sending the whole plan back.
    """
    if not plan.steps:
        raise PlanError("the plan has no steps")
    if any(s.id in s.depends_on for s in plan.steps):
        plan = plan.model_copy(update={"steps": [
            s.model_copy(update={"depends_on": [d for d in s.depends_on if d != s.id]}) for s in plan.steps]})
    known = sorted(known_agents)
    ids: dict[str, int] = {}
    for n, step in enumerate(plan.steps, start=1):
        if step.id in ids:
            raise PlanError(f"duplicate step id '{step.id}' in steps {ids[step.id]} and {n}")
        ids[step.id] = n
        if step.agent not in known:
            raise PlanError(f"unknown agent type '{step.agent}' in step {n} ({step.id}); known: {', '.join(known)}")
    for n, step in enumerate(plan.steps, start=1):
        for dep in step.depends_on:
            if dep not in ids:
                raise PlanError(f"step {n} ({step.id}) depends on '{dep}', which is not a step in the plan")
    cycle = _find_cycle({s.id: list(s.depends_on) for s in plan.steps})
    if cycle:
        raise PlanError(f"the steps form a cycle: {' → '.join(cycle)}")
    try:
        budget.check_plan(len(plan.steps))
    except Exception as exc:
        raise PlanError(str(exc)) from None
    return plan


def _find_cycle(deps: dict[str, list[str]]) -> list[str] | None:
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(deps, white)
    for root in deps:
        if color[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path = [root]
        color[root] = grey
        while stack:
            node, i = stack[-1]
            children = deps.get(node, [])
            if i < len(children):
                stack[-1] = (node, i + 1)
                child = children[i]
                if color.get(child) == grey:
                    return path[path.index(child):] + [child]
                if color.get(child) == white:
                    color[child] = grey
                    stack.append((child, 0))
                    path.append(child)
            else:
                color[node] = black
                stack.pop()
                path.pop()
    return None
