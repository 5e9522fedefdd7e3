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
            raise BudgetExceeded(f"run used {used} tokens; the budget allows {self.max_tokens}")

    def check_deadline(self, started_at: float) -> None:
        if time.time() - started_at > self.deadline_s:
            raise BudgetExceeded(f"run passed its deadline of {self.deadline_s:.0f} s")
