"""What the planner's reply must be before anything runs, and the errors the model gets back."""

from __future__ import annotations

import pytest

from core.budget import Budget
from core.errors import PlanError
from core.plan import validate_plan
from core.schemas import Plan, PlanStep

AGENTS = ["email", "leads", "writing"]


def _plan(*steps: tuple[str, str, list[str]]) -> Plan:
    return Plan(goal="g", steps=[PlanStep(id=i, agent=a, instruction="do it", depends_on=d) for i, a, d in steps])


def test_a_step_naming_itself_as_a_dependency_means_none() -> None:
    plan = validate_plan(_plan(("s1", "leads", ["s1"]), ("s2", "email", ["s1", "s2"])), AGENTS, Budget())
    assert [s.depends_on for s in plan.steps] == [[], ["s1"]]


@pytest.mark.parametrize(("steps", "error"), [
    ([("s1", "leads", []), ("s1", "email", [])], "duplicate step id 's1'"),
    ([("s1", "sales", [])], "unknown agent type 'sales' in step 1 (s1); known: email, leads, writing"),
    ([("s1", "leads", ["s9"])], "depends on 's9', which is not a step in the plan"),
    ([("s1", "leads", ["s2"]), ("s2", "email", ["s1"])], "the steps form a cycle: s1 → s2 → s1"),
])
def test_what_cannot_run_goes_back_to_the_model_with_its_reason(steps: list[tuple[str, str, list[str]]],
                                                                error: str) -> None:
    with pytest.raises(PlanError, match=error.replace("(", r"\(").replace(")", r"\)")):
        validate_plan(_plan(*steps), AGENTS, Budget())
