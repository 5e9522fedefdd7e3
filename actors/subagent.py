"""One sub-agent run: a tool-calling loop with a turn budget.

LLM → tool calls → observations → … → final answer. Tool failures go back to the model as
observations; only LLM failures and an exhausted budget end the run unsuccessfully.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from actors.agents import AgentSpec, Tool, invoke, render_subagent_prompt, tools_for
from actors.agents.context import ToolContext, ToolMemory, ToolStore, ToolWorkspace
from core.errors import ActorGone, IntegrationUnavailable, LLMError, LLMUnavailable
from core.schemas import Assignment, ChatMessage, ChatRequest, ChatResponse, StepOutcome

_log = structlog.get_logger("maos.subagent")


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
) -> StepOutcome:
    task = assignment.task
    tools: dict[str, Tool] = {t.name: t for t in tools_for(spec)}
    ctx = ToolContext(store=store, user_id=user_id, run_id=task.run_id, task_id=task.id,
                      idempotency_key=task.idempotency_key, memory=recall, workspace=workspace)
    system = render_subagent_prompt(spec, task_id=task.id, goal=goal, context=assignment.context or "(none)",
                                    memory=memory)
    messages = [ChatMessage(role="system", content=system), ChatMessage(role="user", content=task.instruction)]
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
            if not msg.content.strip():
                return outcome(False, turn, error="the model gave an empty answer")
            return outcome(True, turn, result=msg.content.strip())
        messages.append(msg)
        for call in msg.tool_calls:
            tool = tools.get(call.name)
            if tool is None:
                observation = f"error: unknown tool '{call.name}'; available: {', '.join(sorted(tools))}"
            else:
                try:
                    observation = await invoke(tool, ctx, call.arguments)
                except IntegrationUnavailable as exc:
                    return outcome(False, turn, error=str(exc), wait_on=exc.provider)
            messages.append(ChatMessage(role="tool", content=observation, tool_call_id=call.id, name=call.name))
    return outcome(False, turns, error=f"no final answer within {turns} turns")
