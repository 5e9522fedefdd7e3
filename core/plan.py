"""The plan contract: the JSON schema the model must fill, and validation of what it returns.

Two contracts: the plan alone (``plan_schema``), and the master's decision (``decision_schema``): in
one reply the model answers a message, asks one question back, or plans work for sub-agents.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.budget import Budget
from core.errors import PlanError
from core.schemas import Plan, PlanStep


class Decision(BaseModel):
    """The master's reading of a message, in one reply: answer it, ask one question back, or plan work.

    Read leniently: a reply without ``mode`` is a plan (a model that ignores the field still plans).
    """

    model_config = ConfigDict(extra="forbid", title="Decision")

    mode: Literal["answer", "ask", "plan"] = Field(
        "plan", description="answer: a reply needing no sub-agents (a greeting, a question answered from the "
                            "conversation or memory); ask: one question back, when the request is ambiguous in a way "
                            "that changes what would be done; plan: work for sub-agents.")
    reply: str = Field("", description="For answer and ask: the text the user reads. Empty for plan.")
    goal: str = Field("", description="For plan: the user's goal in one sentence. Empty otherwise.")
    steps: list[PlanStep] = Field(default_factory=list, description="For plan: the steps, independent ones run in "
                                                                     "parallel. Empty for answer and ask.")


_M = TypeVar("_M", bound=BaseModel)
_BASE_SCHEMA = Plan.model_json_schema()
_DECISION_SCHEMA = Decision.model_json_schema()


def plan_schema(agent_names: Sequence[str], max_steps: int, max_deps: int = 8, small_model: bool = False) -> dict[str, Any]:
    """Plan's JSON schema with the agent types as an enum and bounded arrays.

    Bounds matter for small models under a grammar: an unbounded array can loop forever. For a
    small model (``small_model``) step ids are patterned ``s1..sN`` so dependencies can only name
    real steps, and free text is kept grammar-safe (no raw control characters, bounded length).
    """
    schema = _bounded_steps(_BASE_SCHEMA, agent_names, max_steps, max_deps)
    step = schema["$defs"]["PlanStep"]
    schema["properties"]["steps"]["minItems"] = 1
    if small_model:
        ids = f"^s[1-{min(max_steps, 9)}]$"
        step["properties"]["id"]["pattern"] = ids
        step["properties"]["depends_on"].update(maxItems=min(max_deps, 3), items={"type": "string", "pattern": ids})
        schema = grammar_safe_schema(schema)
    return schema


def decision_schema(agent_names: Sequence[str], max_steps: int, max_deps: int = 8) -> dict[str, Any]:
    """Decision's JSON schema: every field required, in the order a reply is best written (mode first, so
    a reply streams as text the UI can show as it comes), the steps bounded as in ``plan_schema``."""
    schema = _bounded_steps(_DECISION_SCHEMA, agent_names, max_steps, max_deps)
    schema["description"] = "Answer the message, ask one question back, or plan work for sub-agents."
    for field in schema["properties"].values():
        field.pop("default", None)
    schema["required"] = ["mode", "reply", "goal", "steps"]
    return schema


def _bounded_steps(base: dict[str, Any], agent_names: Sequence[str], max_steps: int, max_deps: int) -> dict[str, Any]:
    schema = copy.deepcopy(base)
    step = schema["$defs"]["PlanStep"]
    step["properties"]["agent"]["enum"] = list(agent_names)
    step["properties"]["depends_on"]["maxItems"] = max_deps
    step["properties"]["id"].pop("maxLength", None)
    schema["properties"]["steps"]["maxItems"] = max_steps
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
    return _parse(text, Plan, "plan")


def parse_decision(text: str) -> Decision:
    """Parse the model's reply as a Decision (errors as for a plan)."""
    return _parse(text, Decision, "decision")


def decide(text: str, known_agents: Sequence[str], budget: Budget) -> Plan | Decision:
    """The model's decision, valid: an answer or a question (a Decision with its reply and no steps), or a
    validated Plan.

    Anything else is read as a plan and validated as one (the safe side: an unclear decision never
    skips work without a word): ``answer`` with steps is a plan; ``answer`` or ``ask`` with neither
    a reply nor steps raises PlanError, which goes back to the model like an invalid plan.
    """
    decision = parse_decision(text)
    if decision.mode != "plan" and not decision.steps:
        if not decision.reply.strip():
            raise PlanError(f"mode '{decision.mode}' needs a reply: the text the user reads")
        return decision
    return validate_plan(Plan(goal=decision.goal, steps=decision.steps), known_agents, budget)


def _parse(text: str, model: type[_M], what: str) -> _M:
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text[text.find("{"):] if "{" in text else text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"the reply is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or what}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise PlanError(f"the JSON does not match the {what} schema: {problems}") from None


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
