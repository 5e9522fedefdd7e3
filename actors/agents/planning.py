"""The master's prompts: the answer-or-plan decision's and the planner's system prompts, and the
messages it sends (the conversation's turns, the request, then data blocks: the last run's results,
memory, past plans). Used by ``actors.master`` and by the fine-tune export, so a fine-tuned model
is trained on what it will be asked."""

from __future__ import annotations

from collections.abc import Sequence

from actors.agents.prompts import render, render_data
from actors.agents.specs import AgentSpec
from core.chat_schemas import ChatMessage
from core.memory_schemas import PlanExample
from core.schemas import Plan
from memory.conversation_context import LAST_RUN_SOURCE, ConversationContext


def plan_prompt(specs: Sequence[AgentSpec]) -> str:
    """The planner's system prompt: fixed instructions and the agent types, nothing from outside."""
    return render("plan", agents="\n".join(f"- {s.name}: {s.description}" for s in specs))


def decide_prompt(specs: Sequence[AgentSpec]) -> str:
    """The system prompt of the answer-or-plan decision: fixed instructions and the agent types."""
    return render("decide", agents="\n".join(f"- {s.name}: {s.description}" for s in specs))


def plan_messages(specs: Sequence[AgentSpec], message: str, memory: str = "", examples: Sequence[PlanExample] = (),
                  context: ConversationContext | None = None, decide: bool = False) -> list[ChatMessage]:
    """The master's messages: the system prompt (the decision's with ``decide``, else the planner's), the
    conversation's turns in order, the request, then (if any) the last run's results, what memory holds
    and plans that worked for similar requests before, as data in a user message. With none of these,
    just the request (the small embedded model plans worse from a longer prompt)."""
    context = context if context is not None else ConversationContext()
    data: list[str] = []
    if context.last_run:
        data.append(render_data(LAST_RUN_SOURCE, context.last_run))
    if memory.strip():
        data.append(render_data("memory (the user's SOPs, documents and past conversations)", memory))
    if examples:
        shown = "\n\n".join(example_text(e) for e in examples)
        data.append(render_data("plans that worked for similar requests before (examples)", shown))
    task = ("Answer, ask or plan for the message above: use what applies from this data, and put the facts a step "
            "needs into its instruction. Answer with JSON only." if decide else
            "Plan the request above: use what applies from this data, and put the facts a step needs into its "
            "instruction. Answer with JSON only.")
    after = [ChatMessage(role="user", content="\n\n".join([*data, task]))] if data else []
    system = decide_prompt(specs) if decide else plan_prompt(specs)
    return [ChatMessage(role="system", content=system), *context.history, ChatMessage(role="user", content=message),
            *after]


EXAMPLE_STEPS = 5  # of a past plan shown as an example: its shape, not every one of a 1,000-step fanout
EXAMPLE_CHARS = 300  # of its request and of each step's instruction


def example_text(example: PlanExample) -> str:
    """A past plan as the planner sees it, bounded: a big plan (or one whose instructions quoted earlier
    examples) would otherwise grow every prompt it is shown in, and each plan made from those."""
    steps = example.plan.steps
    shown = Plan(goal=example.plan.goal[:EXAMPLE_CHARS], steps=[
        s.model_copy(update={"instruction": s.instruction[:EXAMPLE_CHARS]}) for s in steps[:EXAMPLE_STEPS]])
    more = f"\n(+{len(steps) - EXAMPLE_STEPS} more steps like these)" if len(steps) > EXAMPLE_STEPS else ""
    return f"Request: {example.request[:EXAMPLE_CHARS]}\nPlan: {shown.model_dump_json()}{more}"
