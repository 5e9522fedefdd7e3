"""The master agent: a chat message becomes a reply or a validated plan; finished runs get a summary.

``submit`` answers at once with the run; the master reads the message in the background, with the
conversation's recent turns and its last run (``memory.conversation_context``) and what memory
holds. In one LLM call it decides: answer (a greeting, a question it can answer from what it
reads), ask one question back (a request ambiguous in a way that matters), or plan work for
sub-agents. A reply ends the run ``done`` with no steps, the reply as the assistant's message. An
invalid decision is read as a plan (``core.plan.decide``); an invalid plan goes back to the model
with the error, a bounded number of times, then the run fails with that error. While the LLM
server is unreachable the run waits, with the reason visible. The small embedded model only plans
(today's schema and prompt: a 135M model cannot be trusted to tell a greeting from work).

The system prompt is fixed text; the conversation's turns follow as user and assistant messages,
then the request, then the last run's results, what memory holds and past plans as a user message
of blocks marked as data. Replies, summaries and the run's error are stored without images or links
to unknown hosts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import structlog

from actors.agents import all_specs
from actors.agents.planning import plan_messages
from actors.agents.prompts import render
from actors.runtime.apis import DispatcherApi, GatewayApi, MemoryApi, StoreApi
from actors.runtime.boot import actor_class
from actors.runtime.handles import Handle
from actors.runtime.typed import fire, typed
from core.audit import cancel_entries
from core.budget import Budget
from core.chat_schemas import ChatMessage, ChatRequest
from core.errors import ActorGone, LLMError, LLMUnavailable, PlanError
from core.memory_schemas import MemoryContext, PlanExample
from core.plan import Decision, decide, decision_schema, parse_plan, plan_schema, validate_plan
from core.schemas import (
    FINAL_RUN_STATUSES,
    TERMINAL_TASK_STATUSES,
    Message,
    Plan,
    Run,
    RunCancel,
    RunView,
)
from core.settings import Settings
from core.text import safe_model_text
from memory.conversation_context import ConversationContext, fit_context

_log = structlog.get_logger("maos.master")
_EMBEDDED_MAX_STEPS = 4  # a 135M model under a grammar needs tight bounds
_EMBEDDED_CONTEXT_TOKENS = 300  # and plans worse from a long prompt (its window: 4,096 tokens)
_MESSAGE_TOKENS_AT_LEAST = 4  # a message's framing alone (MESSAGE_OVERHEAD_CHARS): what bounds the messages read
_RUNS_LOOKED_AT = 20  # the newest runs of the conversation looked at for the last one with steps
T = TypeVar("T")


class MasterAgent:
    def __init__(self, settings: Settings, store: Handle, gateway: Handle, dispatcher: Handle | None = None,
                 embedded: bool = False, memory: Handle | None = None) -> None:
        self._settings = settings
        self._store = typed(store, StoreApi)
        self._gateway = typed(gateway, GatewayApi)
        # The dispatcher is started after the master: the runtime passes a handle by name, resolved on first use.
        self._dispatcher = typed(dispatcher, DispatcherApi) if dispatcher is not None else None
        self._memory = typed(memory, MemoryApi) if memory is not None else None
        self._small = embedded
        self._max_steps = min(settings.max_plan_steps, _EMBEDDED_MAX_STEPS) if embedded else settings.max_plan_steps
        self._tasks: set[asyncio.Task[None]] = set()  # planning in the background
        self._planning: dict[str, asyncio.Task[None]] = {}  # run id -> its planning, cancelled with the run
        self._finalizing: set[str] = set()

    async def configure(self, settings: Settings, embedded: bool | None = None) -> None:
        """Apply new settings (budgets, attempts, features) to the runs planned from now on."""
        if embedded is not None:
            self._small = embedded
        self._settings = settings
        self._max_steps = min(settings.max_plan_steps, _EMBEDDED_MAX_STEPS) if self._small else settings.max_plan_steps

    async def _ask(self, req: ChatRequest, phase: Literal["plan", "summary"]) -> str:
        """The model's reply; with streaming on, the gateway writes it into the run's events as it comes."""
        if self._settings.stream_replies and req.run_id is not None:
            req = req.model_copy(update={"stream_phase": phase})
        return (await self._gateway.chat(req)).message.content

    async def submit(self, message: str, user_id: str, conversation_id: str | None = None,
                     max_tokens: int | None = None, deadline_s: float | None = None) -> Run:
        """Record the request and start planning; returns the run at once. Its budget: the settings' (the
        user's, as they are while it runs), or, with this request's ``max_tokens`` / ``deadline_s``, the
        settings' then with these, kept with the run."""
        if not message.strip():
            raise PlanError("the message is empty")
        budget: Budget | None = None
        overrides = {k: v for k, v in (("max_tokens", max_tokens), ("deadline_s", deadline_s)) if v is not None}
        if overrides:
            budget = Budget.model_validate({**self._settings.budget.model_dump(), **overrides})
        run = await self._store.create_run(message=message, user_id=user_id, conversation_id=conversation_id, budget=budget)
        self._plan_in_background(run.id, message, user_id, run.conversation_id)
        return run

    def _plan_in_background(self, run_id: str, message: str, user_id: str, conversation_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._plan_and_enqueue(run_id, message, user_id, conversation_id))
        self._planning[run_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._planning.pop(run_id, None))

    async def cancel(self, run_id: str, user_id: str | None, reason: str) -> RunCancel:
        """Stop a run (a person's cancel, or a budget reached): recorded first (``Store.cancel_run``: no step of
        it starts again, its undecided proposals are withdrawn, it ends cancelled with what was done) and
        audited (who or which budget, why, what was withdrawn), then its planning and its running steps are
        cancelled at their next await. ``user_id``: the person cancelling (None: a budget). Idempotent."""
        out: RunCancel = await self._store.cancel_run(run_id=run_id, user_id=user_id, reason=reason)
        planning = self._planning.pop(run_id, None)
        if planning is not None:
            planning.cancel()
        if out.cancelled:
            _log.info("run.cancelled", run_id=run_id, running=len(out.stopped_steps), withdrawn=len(out.withdrawn))
            ended: RunView | None = await self._store.get_run(run_id)
            owner = ended.run.user_id if ended is not None else user_id
            entries = cancel_entries(out, owner, user_id, reason, time.time())
            await asyncio.gather(*(self._store.record_audit(entry=e) for e in entries))
            if self._dispatcher is not None:
                await self._dispatcher.cancel(run_id)
            await self._learn(run_id, ended)
        return out

    async def resume(self, run_id: str) -> None:
        """Plan again a run whose planning was cut off by a restart."""
        view: RunView | None = await self._store.get_run(run_id)
        if view is not None and view.run.status == "planning":
            self._plan_in_background(run_id, view.run.message, view.run.user_id, view.run.conversation_id)

    async def recall(self, user_id: str, message: str, run_id: str | None) -> MemoryContext:
        """What memory holds for this request (recorded as the run's sources); nothing if memory is down."""
        if self._memory is None or not self._settings.rag_plans:
            return MemoryContext(text="")
        try:
            return await self._memory.context(user_id=user_id, query=message, run_id=run_id)
        except Exception as exc:  # memory helps; it is not required to plan
            _log.warning("run.memory_unavailable", run_id=run_id, error=str(exc))
            return MemoryContext(text="")

    async def conversation(self, conversation_id: str, run_id: str | None = None) -> ConversationContext:
        """The conversation's recent turns (not ``run_id``'s own request) and its last run with steps, fitted
        to the context budget; nothing when the budget is 0, and nothing (logged) if the Store fails."""
        budget = self._settings.context_token_budget
        if self._small:
            budget = min(budget, _EMBEDDED_CONTEXT_TOKENS)
        if budget <= 0:
            return ConversationContext()
        try:
            most = min(1000, budget // _MESSAGE_TOKENS_AT_LEAST)  # more could not fit
            turns: list[Message] = await self._store.recent_turns(conversation_id=conversation_id, exclude_run_id=run_id, limit=most)
            last, later = await self._last_run_with_steps(turns)
        except Exception as exc:  # the conversation helps; it is not required to plan
            _log.warning("run.conversation_unavailable", run_id=run_id, error=str(exc))
            return ConversationContext()
        return fit_context(turns, last, budget, later)

    async def _last_run_with_steps(self, turns: Sequence[Message]) -> tuple[RunView | None, int]:
        """The newest run of ``turns`` that had steps, and how many runs came after it (direct answers, which
        have none: after "hello" or "what did you just do?", "the second one" still means that run's)."""
        looked: list[str] = []
        for turn in reversed(turns):
            if turn.run_id is None or turn.run_id in looked:
                continue
            if len(looked) == _RUNS_LOOKED_AT:
                break
            view: RunView | None = await self._store.get_run(turn.run_id)
            if view is not None and view.tasks:
                return view, len(looked)
            looked.append(turn.run_id)
        return None, 0

    async def _plan_and_enqueue(self, run_id: str, message: str, user_id: str, conversation_id: str) -> None:
        delay = 1.0
        started = time.time()
        memory = await self.recall(user_id, message, run_id)
        context = await self.conversation(conversation_id, run_id)
        while True:
            try:
                outcome = await self.respond(message, memory.text, run_id=run_id, examples=memory.examples,
                                             context=context)
                break
            except PlanError as exc:
                _log.warning("run.plan_failed", run_id=run_id, error=str(exc))
                await self._fail(run_id, str(exc))
                return
            except (LLMUnavailable, ActorGone) as exc:
                if time.time() - started > self._settings.run_deadline_s:
                    await self._fail(run_id, str(exc))
                    return
                _log.warning("run.plan_waiting", run_id=run_id, error=str(exc))
                await self._store.note_run_error(run_id=run_id, error=f"waiting: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
            except LLMError as exc:
                await self._fail(run_id, str(exc))
                return
        if isinstance(outcome, Decision):
            await self._reply(run_id, outcome)
            return
        plan = clean_plan(outcome, self._settings.link_allow_list)
        await self._store.enqueue_plan(run_id=run_id, plan=plan, max_attempts=self._settings.max_attempts)
        _log.info("run.planned", run_id=run_id, steps=len(plan.steps))
        if self._dispatcher is not None:  # with what its steps run for: they go out without asking the Store
            fire(self._dispatcher.wake({run_id: (plan.goal, user_id)}))

    async def respond(self, message: str, memory: str = "", run_id: str | None = None,
                      examples: Sequence[PlanExample] = (), context: ConversationContext | None = None) -> Plan | Decision:
        """Answer, ask or plan, in one LLM call: a Decision with its reply (no steps), or a validated Plan.
        The small embedded model, or ``answer_directly`` off, only plans (``plan``)."""
        if self._small or not self._settings.answer_directly:
            return await self.plan(message, memory, run_id=run_id, examples=examples, context=context)
        names = [s.name for s in all_specs()]
        messages = plan_messages(all_specs(), message, memory, examples, context, decide=True)
        return await self._until_valid(
            messages, decision_schema(names, self._max_steps), "Decision", run_id,
            lambda text: decide(text, names, self._settings.budget), "That reply is invalid")

    async def plan(self, message: str, memory: str = "", run_id: str | None = None,
                   examples: Sequence[PlanExample] = (), context: ConversationContext | None = None) -> Plan:
        """A validated plan for ``message`` (no answering: the plan schema and prompt alone)."""
        specs = all_specs()
        names = [s.name for s in specs]
        messages = plan_messages(specs, message, memory, examples, context)
        return await self._until_valid(
            messages, plan_schema(names, self._max_steps, small_model=self._small), "Plan", run_id,
            lambda text: validate_plan(parse_plan(text), names, self._settings.budget), "That plan is invalid")

    async def _until_valid(self, messages: list[ChatMessage], schema: dict[str, Any], schema_name: str,
                           run_id: str | None, check: Callable[[str], T], invalid: str) -> T:
        """Ask until ``check`` accepts the reply; an invalid one goes back to the model with its error, up to
        ``plan_repairs`` times, then PlanError."""
        error = ""
        attempts = 1 + self._settings.plan_repairs
        for attempt in range(attempts):
            text = await self._ask(ChatRequest(
                messages=messages, role="planner", priority="interactive", json_schema=schema,
                schema_name=schema_name, run_id=run_id, agent="master",
                temperature=0.0 if self._small else None, max_tokens=400 if self._small else None,
            ), "plan")
            try:
                return check(text)
            except PlanError as exc:
                error = exc.message
                messages = [*messages, ChatMessage(role="assistant", content=text),
                            ChatMessage(role="user", content=f"{invalid}: {error}. Answer again with corrected JSON only.")]
                if run_id is not None and attempt + 1 < attempts:
                    await self._store.note_run_error(run_id=run_id, error=f"plan invalid, asking again: {error}")
        raise PlanError(f"the model gave no valid plan in {attempts} attempts; last error: {error}", attempts)

    async def _reply(self, run_id: str, decision: Decision) -> None:
        """End the run with the model's reply as its answer, no steps."""
        hosts = self._settings.link_allow_list
        text = safe_model_text(decision.reply, hosts).strip() or "(The reply held nothing that can be shown.)"
        await self._store.finish_run(run_id=run_id, status="done", summary=text, error=None)
        _log.info("run.answered", run_id=run_id, mode=decision.mode)
        await self._learn(run_id)

    async def finalize(self, run_id: str) -> None:
        """Summarize a run whose tasks are all final, and end it."""
        if run_id in self._finalizing:
            return
        self._finalizing.add(run_id)
        try:
            view: RunView | None = await self._store.get_run(run_id)
            if view is None or view.run.status in FINAL_RUN_STATUSES or any(
                t.status not in TERMINAL_TASK_STATUSES for t in view.tasks
            ):
                return
            await self._store.set_run_status(run_id=run_id, status="summarizing")
            summary = await self._summarize(view)
            ok = all(t.status == "done" for t in view.tasks)
            failed = [t for t in view.tasks if t.status != "done"]
            error = None if ok else f"{len(failed)} of {len(view.tasks)} steps did not finish: " + ", ".join(
                f"{t.step_id} ({t.status}: {t.error})" for t in failed[:5])
            hosts = self._settings.link_allow_list  # the listing and errors may quote steps' and tools' text
            await self._store.finish_run(run_id=run_id, status="done" if ok else "failed", summary=safe_model_text(summary, hosts),
                                   error=None if error is None else safe_model_text(error, hosts))
            _log.info("run.finished", run_id=run_id, ok=ok, steps=len(view.tasks))
            await self._learn(run_id)
        finally:
            self._finalizing.discard(run_id)

    async def _summarize(self, view: RunView) -> str:
        if not self._settings.write_summaries:
            return _listing(view)
        lines = [f"Request: {view.run.message}"]
        budget = 6000
        for t in view.tasks:
            text = (t.result or t.error or "")[:300]
            line = f"- {t.step_id} [{t.agent}, {t.status}]: {text}"
            budget -= len(line)
            if budget < 0:
                lines.append(f"- … and {len(view.tasks) - len(lines) + 1} more steps")
                break
            lines.append(line)
        req = ChatRequest(messages=[ChatMessage(role="system", content=render("summary")),
                                    ChatMessage(role="user", content="\n".join(lines))],
                          role="planner", priority="interactive", run_id=view.run.id, agent="master", max_tokens=400)
        try:
            text = safe_model_text(await self._ask(req, "summary"), self._settings.link_allow_list).strip()
            if text:
                return text
        except (LLMError, ActorGone) as exc:
            _log.warning("run.summary_fallback", run_id=view.run.id, error=str(exc))
        return _listing(view) + "\n(The model could not write a summary.)"

    async def _fail(self, run_id: str, error: str) -> None:
        error = safe_model_text(error, self._settings.link_allow_list)  # it may quote the model's plan
        await self._store.finish_run(run_id=run_id, status="failed", summary=None, error=error)
        await self._learn(run_id)

    async def _learn(self, run_id: str, ended: RunView | None = None) -> None:
        """The finished run (``ended``, else read) becomes a conversation memory and a learning (in the background)."""
        if self._memory is None:
            return
        ended = ended if ended is not None else await self._store.get_run(run_id)
        if ended is not None:
            fire(self._memory.remember_run(ended))

    async def ping(self) -> bool:
        return True


def _listing(view: RunView) -> str:
    """A summary without the model: how many steps finished, and each step's first line."""
    done = sum(t.status == "done" for t in view.tasks)
    lines = [f"{done} of {len(view.tasks)} steps finished."]
    for t in view.tasks[:50]:
        first = (t.result or t.error or "").strip().splitlines()
        lines.append(f"- {t.step_id} ({t.agent}, {t.status}): {first[0][:200] if first else ''}")
    if len(view.tasks) > 50:
        lines.append(f"- … and {len(view.tasks) - 50} more")
    return "\n".join(lines)


ActorMasterAgent = actor_class(MasterAgent)  # what Ray runs (see actors.runtime.boot)


def clean_plan(plan: Plan, hosts: Sequence[str]) -> Plan:
    """The plan as stored and shown: its goal and instructions are model text (images and links
    to unknown hosts removed, as from any model text kept)."""
    return plan.model_copy(update={
        "goal": safe_model_text(plan.goal, hosts),
        "steps": [s.model_copy(update={"instruction": safe_model_text(s.instruction, hosts) or s.instruction})
                  for s in plan.steps]})
