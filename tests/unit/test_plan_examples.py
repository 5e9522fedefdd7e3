"""Past plans shown to the planner are bounded: a 1,000-step fanout, or a plan whose instructions
quoted earlier examples, must not grow every later prompt (each plan made from them grew the next)."""

from __future__ import annotations

from actors.agents import all_specs
from actors.agents.planning import EXAMPLE_CHARS, EXAMPLE_STEPS, example_text, plan_messages
from core.memory_schemas import PlanExample
from core.schemas import Plan, PlanStep


def test_a_big_past_plan_is_shown_by_its_shape_only() -> None:
    steps = [PlanStep(id=f"s{i}", agent="email", instruction="reply [use reply_email] " * 200) for i in range(1000)]
    example = PlanExample(run_id="r1", request="follow up " * 500, plan=Plan(goal="g" * 5000, steps=steps),
                          corrected=False)
    text = example_text(example)
    assert "(+995 more steps like these)" in text and text.count('"id"') == EXAMPLE_STEPS
    assert len(text) < 12 * EXAMPLE_CHARS + EXAMPLE_STEPS * (EXAMPLE_CHARS + 100)
    messages = plan_messages(all_specs(), "do it", examples=[example, example])
    assert sum(len(m.content) for m in messages) < 30_000  # was ~10 MB for these two
