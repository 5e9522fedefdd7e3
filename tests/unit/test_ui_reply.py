"""A run the master answers without steps, as the chat page shows it: the reply streams out of the
decision being written, then the stored reply; the plan panel says no steps were needed."""

from __future__ import annotations

import json

from core.schemas import Plan, PlanStep, RunEvent
from ui.progress import RunProgress, string_prefix
from ui.render import bubble, plan_html


def _tokens(p: RunProgress, text: str, size: int = 4) -> list[str]:
    shown = []
    for i in range(0, len(text), size):
        p.apply(RunEvent(kind="token", run_id="r1", at=0.0, phase="plan", text=text[i:i + size]))
        shown.append(bubble(p))
    return shown


def test_a_reply_streams_as_text_and_the_run_shows_no_steps() -> None:
    p = RunProgress("r1")
    p.apply(RunEvent(kind="status", run_id="r1", seq=1, at=0.0, status="planning"))
    reply = 'Hello! I can find leads, draft "mail" and book calls.\nAsk away.'
    shown = _tokens(p, json.dumps({"mode": "answer", "reply": reply, "goal": "", "steps": []}))
    partial = [s for s in shown if s.startswith("Hello") and s.endswith(" ▍")]
    assert len(partial) > 5 and all('{' not in s and '"mode"' not in s for s in shown)  # never the JSON
    assert p.summary == reply
    p.apply(RunEvent(kind="summary", run_id="r1", at=1.0, text=reply))
    p.apply(RunEvent(kind="end", run_id="r1", at=1.0, status="done"))
    assert bubble(p) == reply and "Answered in the chat: no steps were needed." in plan_html(p)


def test_a_plans_text_is_not_taken_for_a_reply() -> None:
    p = RunProgress("r1")
    plan = Plan(goal="Draft notes with a long goal " * 5, steps=[PlanStep(id="s1", agent="writing", instruction="w")])
    shown = _tokens(p, json.dumps({"mode": "plan", "reply": "", **plan.model_dump()}))
    assert p.summary == "" and p.decision is None and all(s.startswith("◐ Planning") for s in shown)
    assert p.plan_chars > 0


def test_a_json_string_is_read_as_far_as_it_is_written() -> None:
    assert string_prefix('Caf\\u00e9 \\"x\\"\\n and more"') == 'Café "x"\n and more'
    assert string_prefix("half an escape \\u00") == "half an escape "
    assert string_prefix("cut \\") == "cut "
