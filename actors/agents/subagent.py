"""One sub-agent run: a tool-calling loop with a turn budget.

LLM → tool calls → observations → … → final answer. Tool failures, and calls the model wrote
so they could not be read (``ToolCall.parse_error``), go back to the model as observations; only
LLM failures and an exhausted budget end the run unsuccessfully.

Only the fixed instructions of the agent type are system text. The run's goal, the results of the
steps this one depends on and what memory holds reach the model as a user message of blocks marked
with their source; the step's instruction is the last user message. At most ``max_tool_calls`` calls
of one model turn run; the rest are answered "not run". The final answer is stored without images
or links to unknown hosts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date

import structlog

from actors.agents import AgentSpec, Tool, invoke, render_subagent_prompt, tools_for
from actors.agents.context import ToolContext, ToolMemory, ToolStore, ToolWorkspace
from actors.agents.prompts import render_data
from core.chat_schemas import ChatMessage, ChatRequest, ChatResponse
from core.errors import ActorGone, IntegrationUnavailable, LLMError, LLMUnavailable
from core.schemas import Assignment, StepOutcome
from core.text import safe_model_text

_log = structlog.get_logger("maos.subagent")
DEFAULT_MAX_TOOL_CALLS = 8


def subagent_messages(spec: AgentSpec | str, *, task_id: str, goal: str, instruction: str, context: str = "",
                      memory: str = "", today: date | None = None) -> list[ChatMessage]:
    """The messages a step starts with: the type's instructions as system text, then the goal and any
    data (earlier steps' results, memory) in one user message, then the step's instruction."""
    given = [f"Goal of the whole request: {goal.strip()}"] if goal.strip() else []
    if context.strip():
        given.append(render_data("the results of the steps this one depends on", context))
    if memory.strip():
        given.append(render_data("memory (the user's SOPs, documents and past conversations)", memory))
    return [ChatMessage(role="system", content=render_subagent_prompt(spec, task_id=task_id, today=today)),
            *([ChatMessage(role="user", content="\n\n".join(given))] if given else []),
            ChatMessage(role="user", content=instruction)]


def not_run(cap: int) -> str:
    """The observation of a tool call past the per-turn cap."""
    return (f"error: not run: at most {cap} tool calls run from one turn (cap reached). "
            "Call it again in your next turn if it is still needed.")


async def run_subagent(
    assignment: Assignment,
    spec: AgentSpec,
    chat: Callable[[ChatRequest], Awaitable[ChatResponse]],
    store: ToolStore,
    user_id: str,
    goal: str,
    max_turns: int,
    memory: str = "",
    recall: ToolMemory | None = None,
    workspace: ToolWorkspace | None = None,
    max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS,
    link_hosts: Sequence[str] = (),
) -> StepOutcome:
    task = assignment.task
    tools: dict[str, Tool] = {t.name: t for t in tools_for(spec)}
    ctx = ToolContext(store=store, user_id=user_id, run_id=task.run_id, task_id=task.id,
                      idempotency_key=task.idempotency_key, memory=recall, workspace=workspace)
    messages = subagent_messages(spec, task_id=task.id, goal=goal, instruction=task.instruction,
                                 context=assignment.context, memory=memory)
    tokens_in = tokens_out = 0
    turns = min(max_turns, spec.max_turns)

    def outcome(ok: bool, taken: int, **kw: object) -> StepOutcome:
        return StepOutcome(task_id=task.id, attempt=assignment.attempt, ok=ok, tokens_in=tokens_in,
                           tokens_out=tokens_out, turns=taken, **kw)  # type: ignore[arg-type]

    for turn in range(1, turns + 1):
        req = ChatRequest(messages=messages, role="worker", priority="background",
                          tools=[t.spec() for t in tools.values()], run_id=task.run_id, task_id=task.id,
                          agent=spec.name)
        try:
            resp = await chat(req)
        except LLMUnavailable as exc:
            return outcome(False, turn, error=str(exc), wait=True)
        except ActorGone as exc:
            return outcome(False, turn, error=f"LLM gateway unavailable: {exc}", wait=True)
        except LLMError as exc:
            return outcome(False, turn, error=str(exc))
        tokens_in += resp.tokens_in
        tokens_out += resp.tokens_out
        msg = resp.message
        if not msg.tool_calls:
            answer = msg.content.strip()
            if not answer:
                return outcome(False, turn, error="the model gave an empty answer")
            kept = safe_model_text(answer, link_hosts).strip()
            if kept != answer:
                _log.info("subagent.result_cleaned", task_id=task.id, removed_chars=len(answer) - len(kept))
            return outcome(True, turn, result=kept or "(the answer held only images or links, removed)")
        messages.append(msg)
        if len(msg.tool_calls) > max_tool_calls:
            _log.warning("subagent.tool_cap", task_id=task.id, calls=len(msg.tool_calls), cap=max_tool_calls)
        for i, call in enumerate(msg.tool_calls):
            tool = tools.get(call.name)
            if i >= max_tool_calls:
                observation = not_run(max_tool_calls)
            elif call.parse_error is not None:  # written as text the client could not read: not run
                observation = f"error: not run: {call.parse_error}. Available tools: {', '.join(sorted(tools))}"
            elif tool is None:
                observation = f"error: unknown tool '{call.name}'; available: {', '.join(sorted(tools))}"
            else:
                try:
                    observation = await invoke(tool, ctx, call.arguments)
                except IntegrationUnavailable as exc:
                    return outcome(False, turn, error=str(exc), wait_on=exc.provider)
            messages.append(ChatMessage(role="tool", content=observation, tool_call_id=call.id, name=call.name))
    return outcome(False, turns, error=f"no final answer within {turns} turns")
