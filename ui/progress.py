"""A run as the chat page sees it: its event stream folded into state (pure, no I/O).

A run the master answers without steps (a greeting, a question, a question back) streams its
decision as plan-phase tokens, JSON that opens ``{"mode": "answer", "reply": "…``: the reply is read
out of it as it comes and shown like a summary being written, until the stored reply arrives.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from core.schemas import MemorySource, Plan, RunEvent, TaskRecord

ACTIVE_RUN_STATUSES = frozenset({"planning", "running", "summarizing"})
_REPLY_OPENS = re.compile(r'\s*\{\s*"mode"\s*:\s*"(?:answer|ask)"\s*,\s*"reply"\s*:\s*"')
_REPLY_OPENS_WITHIN = 80  # characters: a decision that has not opened as a reply by then is a plan
_REPLY_MAX_CHARS = 20_000


@dataclass
class StepProgress:
    """One plan step: its latest state, attempts and timing."""

    step_id: str
    agent: str
    instruction: str
    status: str = "pending"
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    output: str | None = None
    error: str | None = None
    node: str | None = None  # the Ray node its last attempt ran on

    def seconds(self, now: float) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at if self.finished_at is not None else now) - self.started_at


@dataclass
class RunProgress:
    """Everything the events of one run said so far; ``last_seq`` is where a reconnect resumes."""

    run_id: str
    status: str = "planning"
    last_seq: int = 0
    plan_chars: int = 0
    goal: str | None = None
    steps: dict[str, StepProgress] = field(default_factory=dict)
    summary: str = ""  # the answer as it streams: the summary, or a reply read out of the decision
    final_summary: str | None = None
    decision: str | None = ""  # the decision's text while it may be a reply; None once it cannot be
    error: str | None = None
    ended: bool = False
    # (collection, source_id, heading, snippet) → the source; the planner and steps may get the same one
    found: dict[tuple[str, str, str, str], MemorySource] = field(default_factory=dict)

    def apply(self, event: RunEvent) -> None:
        if event.seq and event.seq <= self.last_seq:
            return  # seen already (a replay after a reconnect)
        self.last_seq = event.seq or self.last_seq
        if event.kind in ("status", "end") and event.status is not None:
            self.status = event.status
            if event.error:
                self.error = event.error
            self.ended = self.ended or event.kind == "end"
        elif event.kind == "token" and event.text:
            if event.phase == "summary":
                self.summary += event.text
            else:
                self.plan_chars += len(event.text)
                self._read_reply(event.text)
        elif event.kind == "plan" and event.plan is not None:
            self.set_plan(event.plan)
        elif event.kind == "task" and event.step_id:
            self._task(event)
        elif event.kind == "summary" and event.text is not None:
            self.final_summary = event.text
        elif event.kind == "memory" and event.sources:
            self.add_sources(event.sources)

    def _read_reply(self, text: str) -> None:
        if self.decision is None:
            return
        self.decision += text
        opened = _REPLY_OPENS.match(self.decision)
        if opened is None:
            if len(self.decision) > _REPLY_OPENS_WITHIN:
                self.decision = None  # a plan: its text is not kept
            return
        if len(self.decision) > _REPLY_MAX_CHARS:
            self.decision = None
            return
        self.summary = string_prefix(self.decision[opened.end():])

    def add_sources(self, sources: list[MemorySource]) -> None:
        for s in sources:
            key = (s.collection, s.source_id, s.heading, s.snippet)
            if key not in self.found or self.found[key].score < s.score:
                self.found[key] = s

    @property
    def sources(self) -> list[MemorySource]:
        """Every memory given to the planner or a step so far, best first."""
        return sorted(self.found.values(), key=lambda s: -s.score)

    def set_plan(self, plan: Plan) -> None:
        self.goal = plan.goal
        for s in plan.steps:
            self.steps.setdefault(s.id, StepProgress(s.id, s.agent, s.instruction))

    def _task(self, event: RunEvent) -> None:
        assert event.step_id is not None
        step = self.steps.setdefault(event.step_id, StepProgress(event.step_id, event.agent or "?", ""))
        step.status = event.status or step.status
        if event.attempt:
            step.attempts = max(step.attempts, event.attempt)
        if step.status == "running":
            step.started_at, step.finished_at = event.at, None
            step.node = event.node or step.node
        elif step.status in ("done", "dead", "blocked", "failed", "cancelled"):
            step.finished_at = event.at
        if step.status == "done":
            step.output, step.error = event.text, None
        elif event.error:
            step.error = event.error

    def absorb_tasks(self, tasks: list[TaskRecord]) -> None:
        """Fill in full results and timings from the task table (the events carry excerpts)."""
        for t in tasks:
            step = self.steps.setdefault(t.step_id, StepProgress(t.step_id, t.agent, t.instruction))
            step.status, step.attempts = t.status, t.attempts
            step.started_at, step.finished_at = t.started_at, t.finished_at
            step.output, step.error = t.result, t.error
            step.node = t.node or step.node

    @property
    def spread(self) -> bool:
        """Whether its steps ran on more than one machine (then each step says where it ran)."""
        return len({s.node for s in self.steps.values() if s.node}) > 1

    @property
    def active(self) -> bool:
        return not self.ended and self.status in ACTIVE_RUN_STATUSES

    def counts(self) -> tuple[int, int]:
        """(steps done, steps in the plan)."""
        return sum(1 for s in self.steps.values() if s.status == "done"), len(self.steps)


def string_prefix(raw: str) -> str:
    """The text of a JSON string's body as far as it has been written (``raw`` starts after the opening
    quote; it ends at the closing quote, or where it was cut, an escape cut in half left out)."""
    end = 0
    while end < len(raw) and raw[end] != '"':
        if raw[end] == "\\":
            step = 6 if raw[end + 1:end + 2] == "u" else 2
            if end + step > len(raw):
                break
            end += step
        else:
            end += 1
    try:
        return str(json.loads(f'"{raw[:end]}"'))
    except ValueError:
        return ""
