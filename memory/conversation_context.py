"""The conversation so far, as the master reads it before answering: recent turns and the last run,
fitted to a token budget.

Turns (the user's messages, the master's replies and summaries) become user and assistant messages
in order, never system text. The last run that had steps becomes a compact listing (which run it was,
its request, goal, and each step's numbered result, shortened), which the master gives as a data
block marked with its source: a follow-up's "the second one" or "them" can only resolve against what
the model can read, and it resolves against that run even when the newest turns were direct answers
(a greeting, "what did you just do?"), which have no steps.

The same context is rebuilt for a past run from its conversation (``context_at``): the fine-tune
export shows a model what the master was asked then.

Sizes are estimated at four characters a token: no tokenizer to load, and close enough for English
to keep a prompt inside a model's window. The last run takes at most half the budget; the turns
take the rest, newest first, each shortened to a quarter of the budget at most, and the oldest
that do not fit are left out (the history stays contiguous and opens with the user's turn).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.chat_schemas import ChatMessage
from core.schemas import ConversationView, Message, RunView

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_CHARS = 16  # a chat template's role markers and separators, about four tokens a message
LAST_RUN_SOURCE = "the last run in this conversation (its request, plan and step results)"
_STEP_RESULT_CHARS = (80, 400)  # a step's result is shortened to its share of the room, within these
_STEP_INSTRUCTION_CHARS = 100


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` takes, estimated (about four characters a token)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def clip(text: str, limit: int) -> str:
    """``text`` on one line, whitespace collapsed, shortened (at a word where one is near) to at most ``limit``
    characters."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    if limit <= 1:
        return "…"[:limit]
    cut = line[:limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space >= len(cut) * 0.6 else cut) + "…"  # at a word, unless that loses much


@dataclass(frozen=True)
class ConversationContext:
    """What the master is given of the conversation: the turns it keeps and the last run's listing."""

    history: tuple[ChatMessage, ...] = ()
    last_run: str = ""  # the last run that had steps, compacted; "" when there is none
    last_run_id: str | None = None  # which run that was
    turns_available: int = 0  # turns that were there to choose from (``len(history)`` were kept)

    def tokens(self) -> int:
        """Tokens the context adds to a request, estimated."""
        return sum(estimate_tokens(m.content) + MESSAGE_OVERHEAD_CHARS // CHARS_PER_TOKEN for m in self.history) + (
            estimate_tokens(self.last_run))


def fit_context(turns: Sequence[Message], last_run: RunView | None, budget_tokens: int,
                later_runs: int = 0) -> ConversationContext:
    """The newest ``turns`` (oldest first) and ``last_run`` within ``budget_tokens``; ``later_runs``: requests
    answered after ``last_run`` without steps (named in its listing)."""
    budget = max(0, budget_tokens) * CHARS_PER_TOKEN
    run_text = compact_run(last_run, budget // 2, later_runs) if last_run is not None and last_run.tasks else ""
    room = budget - len(run_text)
    longest = max(200, budget // 4)
    kept: list[ChatMessage] = []
    for turn in reversed(turns):
        text = clip(turn.content, longest)
        if not text:
            continue
        if len(text) + MESSAGE_OVERHEAD_CHARS > room:
            break
        kept.append(ChatMessage(role=turn.role, content=text))
        room -= len(text) + MESSAGE_OVERHEAD_CHARS
    kept.reverse()
    while kept and kept[0].role != "user":  # a history cut between a request and its answer opens with the request
        kept.pop(0)
    return ConversationContext(history=tuple(kept), last_run=run_text, turns_available=len(turns),
                               last_run_id=last_run.run.id if run_text and last_run is not None else None)


def run_label(run_id: str, later_runs: int) -> str:
    """Which run a listing is of, and what came after it."""
    if not later_runs:
        return f"Run: {run_id} (the request just before this message)"
    return (f"Run: {run_id} (the newest run with steps in this conversation; {later_runs} later "
            f"request{'s' if later_runs != 1 else ''} answered without steps)")


def compact_run(view: RunView, max_chars: int, later_runs: int = 0) -> str:
    """The run in at most ``max_chars``: which run, its request, goal, state, then each step in plan order,
    numbered, with its result (or why it failed) shortened to the step's share of the room; the steps that
    do not fit are counted, not listed."""
    run, tasks = view.run, view.tasks
    done = sum(t.status == "done" for t in tasks)
    head = [run_label(run.id, later_runs), f"Request: {clip(run.message, 300)}"]
    if run.plan is not None and run.plan.goal.strip():
        head.append(f"Goal: {clip(run.plan.goal, 200)}")
    head.append(f"State: {run.status}, {done} of {len(tasks)} steps done. Steps in plan order:")
    text = "\n".join(head)
    if len(text) >= max_chars:
        return clip(text, max_chars)
    room = max_chars - len(text)
    low, high = _STEP_RESULT_CHARS
    share = min(high, max(low, room // max(1, len(tasks)) - _STEP_INSTRUCTION_CHARS))
    lines: list[str] = []
    for n, t in enumerate(tasks, start=1):
        outcome = t.result if t.status == "done" else (t.error or "no result yet")
        line = (f"{n}. {t.step_id} ({t.agent}, {t.status}): {clip(t.instruction, _STEP_INSTRUCTION_CHARS)} "
                f"→ {clip(outcome or '', share)}")
        left = len(tasks) - n
        more = f"… and {left} more steps not shown" if left else ""
        if len(line) + 1 + (len(more) + 1 if more else 0) > room:
            unlisted = f"… and {left + 1} more steps not shown"
            if len(unlisted) + 1 <= room:
                lines.append(unlisted)
            break
        lines.append(line)
        room -= len(line) + 1
    return "\n".join([text, *lines])


def context_at(conversation: ConversationView, run_id: str, runs: dict[str, RunView], budget_tokens: int,
               ) -> ConversationContext:
    """The context the master read when it answered ``run_id``: the conversation's turns before it and its
    last earlier run with steps (looked up in ``runs``; see ``earlier_run_with_steps``), fitted to
    ``budget_tokens``."""
    asked = next((r.created_at for r in conversation.runs if r.id == run_id), None)
    if asked is None or budget_tokens <= 0:
        return ConversationContext()
    turns = [m for m in conversation.messages if m.created_at < asked and m.run_id != run_id]
    found = earlier_run_with_steps(conversation, run_id)
    last = runs.get(found[0]) if found is not None else None
    return fit_context(turns, last, budget_tokens, found[1] if found is not None else 0)


def earlier_run_with_steps(conversation: ConversationView, run_id: str) -> tuple[str, int] | None:
    """(id, requests answered after it) of the newest run asked before ``run_id`` whose plan had steps."""
    asked = next((r.created_at for r in conversation.runs if r.id == run_id), None)
    if asked is None:
        return None
    earlier = sorted((r for r in conversation.runs if r.created_at < asked and r.id != run_id),
                     key=lambda r: r.created_at, reverse=True)
    for later, r in enumerate(earlier):
        if r.plan is not None and r.plan.steps:
            return r.id, later
    return None
