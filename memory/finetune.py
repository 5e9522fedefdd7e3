"""Approved examples as chat-format JSONL for a LoRA fine-tune.

An example is approved when its run ended well and was not rated down, or when a person corrected
it (the correction is the answer; the rejected plan is never exported). Each approved run gives a
planner example (request → plan JSON) and one example per finished step of an uncorrected plan
(the sub-agent's prompt and instruction → its result).

The prompts are the ones the runtime uses, passed in by the caller (the planner's system prompt, the
function that builds a step's messages), so the examples teach exactly what the model is asked.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any, Protocol

from core.memory_schemas import LearningView
from core.schemas import ChatMessage, RunView


class StepMessages(Protocol):
    """The messages a step starts with (``actors.subagent.subagent_messages``)."""

    def __call__(self, agent: str, /, *, task_id: str, goal: str, instruction: str) -> list[ChatMessage]: ...


def examples(learnings: Iterable[LearningView], runs: dict[str, RunView], *, planner_prompt: str,
             step_messages: StepMessages) -> list[tuple[str, dict[str, Any]]]:
    """(agent type, {"messages": [...]}) for every approved example, planner ones first per run.
    ``planner_prompt`` is the planner's system prompt; ``step_messages`` builds a step's messages."""
    out: list[tuple[str, dict[str, Any]]] = []
    for x in learnings:
        plan = x.correction or x.plan
        if not x.usable or plan is None:
            continue
        out.append(("master", {"messages": [
            {"role": "system", "content": planner_prompt},
            {"role": "user", "content": x.request},
            {"role": "assistant", "content": plan.model_dump_json()},
        ]}))
        view = runs.get(x.run_id)
        if x.correction is not None or view is None:
            continue  # the steps carried out a plan the person replaced
        goal = view.run.plan.goal if view.run.plan else ""
        for t in view.tasks:
            if t.status == "done" and t.result:
                prompt, *users = step_messages(t.agent, task_id=t.id, goal=goal, instruction=t.instruction)
                out.append((t.agent, {"messages": [  # the user messages as one: many trainers want turns to alternate
                    {"role": "system", "content": prompt.content},
                    {"role": "user", "content": "\n\n".join(m.content for m in users)},
                    {"role": "assistant", "content": t.result},
                ]}))
    return out


def write_jsonl(rows: list[tuple[str, dict[str, Any]]], path: str) -> Counter[str]:
    """Write the examples, one JSON object per line; returns the count per agent type."""
    with open(path, "w", encoding="utf-8") as f:
        for _, record in rows:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return Counter(agent for agent, _ in rows)
