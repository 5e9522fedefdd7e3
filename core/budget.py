"""Budgets are objects, checked in one place."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from core.errors import BudgetExceeded


class Budget(BaseModel):
    """Limits for one run (plan size, tokens, wall time) and for each sub-agent (turns)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_steps: int = Field(1000, ge=1, description="Most steps a plan may have.")
    max_turns: int = Field(6, ge=1, description="Most LLM turns one sub-agent may take.")
    max_tokens: int = Field(2_000_000, ge=1, description="Most tokens (in + out) one run may spend.")
    deadline_s: float = Field(3600.0, gt=0, description="Wall-clock seconds one run may take.")

    def check_plan(self, n_steps: int) -> None:
        if n_steps > self.max_steps:
            raise BudgetExceeded(f"plan has {n_steps} steps; the budget allows {self.max_steps}")

    def check_turn(self, turn: int) -> None:
        if turn >= self.max_turns:
            raise BudgetExceeded(f"sub-agent used all {self.max_turns} turns without a final answer")

    def check_tokens(self, used: int) -> None:
        if used > self.max_tokens:
            raise BudgetExceeded(f"token budget of {self.max_tokens} reached (the run used {used})")

    def check_deadline(self, started_at: float, now: float | None = None) -> None:
        if (time.time() if now is None else now) - started_at > self.deadline_s:
            raise BudgetExceeded(f"wall-clock budget of {self.deadline_s:g} s reached")

    def run_stop_reason(self, used_tokens: int, started_at: float, now: float | None = None) -> str | None:
        """Why a run at this point must stop (its tokens, then its wall-clock), or None: the one check a
        running run gets (the dispatcher's budget sweep); the plan's size is checked when it is validated,
        a sub-agent's turns by its loop."""
        try:
            self.check_tokens(used_tokens)
            self.check_deadline(started_at, now)
        except BudgetExceeded as exc:
            return str(exc)
        return None
