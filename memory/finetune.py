"""Approved examples as chat-format JSONL for a LoRA fine-tune.

An example is approved when its run ended well and was not rated down, or when a person corrected
it (the correction is the answer; the rejected plan is never exported). Each approved run gives a
master example (its messages → the plan) and one example per finished step of an uncorrected plan
(the sub-agent's prompt and instruction → its result).

The prompts are the ones the runtime uses, passed in by the caller (the function that builds the
master's messages, the one that builds a step's), so the examples teach exactly what the model is
asked. The master reads the conversation as it was when the run was asked (``contexts``, built by
``training_contexts``: the turns before it and the last earlier run's results) and, with ``decide``,
answers with a decision (``{"mode": "plan", ...}``) as it does now. Consecutive messages of one role
are joined into one: many trainers want turns to alternate.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from core.chat_schemas import ChatMessage
from core.memory_schemas import LearningView
from core.plan import Decision
from core.schemas import ConversationView, RunView
from memory.conversation_context import ConversationContext, context_at, earlier_run_with_steps


class StepMessages(Protocol):
    """The messages a step starts with (``actors.agents.subagent.subagent_messages``)."""

    def __call__(self, agent: str, /, *, task_id: str, goal: str, instruction: str) -> list[ChatMessage]: ...


class MasterMessages(Protocol):
    """The messages the master is asked with (``actors.agents.planning.plan_messages`` with the agent types)."""

    def __call__(self, request: str, context: ConversationContext, /) -> list[ChatMessage]: ...


def examples(learnings: Iterable[LearningView], runs: dict[str, RunView], *, master_messages: MasterMessages,
             step_messages: StepMessages, contexts: Mapping[str, ConversationContext] | None = None,
             decide: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """(agent type, {"messages": [...]}) for every approved example, master ones first per run.
    ``master_messages`` builds the master's messages from a request and its conversation (``contexts``, by
    run id; none: no conversation); ``decide``: the answer is a decision, else a bare plan (the planner's
    prompt, as the small embedded model is asked); ``step_messages`` builds a step's messages."""
    out: list[tuple[str, dict[str, Any]]] = []
    contexts = contexts if contexts is not None else {}
    for x in learnings:
        plan = x.correction or x.plan
        if not x.usable or plan is None:
            continue
        answer = (Decision(mode="plan", goal=plan.goal, steps=plan.steps) if decide else plan).model_dump_json()
        asked = master_messages(x.request, contexts.get(x.run_id, ConversationContext()))
        out.append(("master", {"messages": alternating([*asked, ChatMessage(role="assistant", content=answer)])}))
        view = runs.get(x.run_id)
        if x.correction is not None or view is None:
            continue  # the steps carried out a plan the person replaced
        goal = view.run.plan.goal if view.run.plan else ""
        for t in view.tasks:
            if t.status == "done" and t.result:
                prompt, *users = step_messages(t.agent, task_id=t.id, goal=goal, instruction=t.instruction)
                out.append((t.agent, {"messages": alternating(
                    [prompt, *users, ChatMessage(role="assistant", content=t.result)])}))
    return out


def training_contexts(learnings: Iterable[LearningView], runs: Mapping[str, RunView],
                      get_conversation: Callable[[str], ConversationView | None],
                      get_run: Callable[[str], RunView | None], budget_tokens: int) -> dict[str, ConversationContext]:
    """The conversation each usable learning's run was asked in, as the master read it then (by run id).
    ``runs`` holds the learnings' runs; the earlier runs named are read with ``get_run``."""
    out: dict[str, ConversationContext] = {}
    conversations: dict[str, ConversationView | None] = {}
    earlier: dict[str, RunView] = {}
    for x in learnings:
        view = runs.get(x.run_id)
        if not x.usable or view is None:
            continue
        cid = view.run.conversation_id
        if cid not in conversations:
            conversations[cid] = get_conversation(cid)
        conversation = conversations[cid]
        if conversation is None:
            continue
        found = earlier_run_with_steps(conversation, x.run_id)
        if found is not None and found[0] not in earlier:
            last = runs.get(found[0]) or get_run(found[0])
            if last is not None:
                earlier[found[0]] = last
        out[x.run_id] = context_at(conversation, x.run_id, earlier, budget_tokens)
    return out


def alternating(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """The messages as dicts, each run of one role's messages joined into one."""
    out: list[dict[str, str]] = []
    for m in messages:
        if out and out[-1]["role"] == m.role:
            out[-1]["content"] += "\n\n" + m.content
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def write_jsonl(rows: list[tuple[str, dict[str, Any]]], path: str) -> Counter[str]:
    """Write the examples, one JSON object per line; returns the count per agent type."""
    with open(path, "w", encoding="utf-8") as f:
        for _, record in rows:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return Counter(agent for agent, _ in rows)
