"""Feedback under a finished run's answer: rate it, or correct its plan (the corrected plan becomes
the example future plans learn from). Every save goes to the API, which answers with what it kept."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gradio as gr
from pydantic import ValidationError

from core.memory_schemas import Feedback, LearningView
from core.schemas import Plan
from ui.client import ApiClient, ApiError
from ui.disclosure import Disclosure, disclosure
from ui.render import learning_message

BLANK_PLAN = '{\n  "goal": "",\n  "steps": [\n    {"id": "s1", "agent": "", "instruction": "", "depends_on": []}\n  ]\n}'
Learned = dict[str, Any] | None  # the last LearningView the API sent, as JSON data (kept in a gr.State)


def plan_text(plan: Plan | None) -> str:
    return plan.model_dump_json(indent=2) if plan is not None else BLANK_PLAN


def parse_plan(text: str) -> Plan:
    """The edited plan, or ValueError saying what is wrong with it (JSON syntax, then the fields)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the plan is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'plan'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"the plan does not fit: {fields}") from exc


def _buttons(rating: str | None) -> tuple[Any, Any]:
    return (gr.Button(variant="primary" if rating == "up" else "secondary"),
            gr.Button(variant="primary" if rating == "down" else "secondary"))


class FeedbackHandlers:
    def __init__(self, client: ApiClient, editor: Disclosure) -> None:
        self.client = client
        self.editor = editor

    async def prepare(self, run_id: str | None) -> tuple[Any, ...]:
        """Once a run has ended: show the form, the plan prefilled (its editor closed), and any feedback
        already given."""
        hidden = (gr.Column(visible=False), gr.skip(), gr.skip(), None, "", *_buttons(None), gr.skip(),
                  *[gr.skip()] * len(self.editor.parts))
        if not run_id:
            return hidden
        try:
            view = await self.client.get_run(run_id)
        except ApiError:
            return hidden
        if view.run.finished_at is None:
            return hidden
        try:
            learned: LearningView | None = await self.client.learning(run_id)
        except ApiError:
            learned = None
        original = plan_text(view.run.plan)
        shown = plan_text(learned.correction) if learned and learned.correction else original
        note = learning_message(learned) if learned and (learned.rating or learned.correction) else ""
        return (gr.Column(visible=True), shown, original, learned.model_dump(mode="json") if learned else None, note,
                *_buttons(learned.rating if learned else None), learned.comment if learned and learned.comment else "",
                *self.editor.outputs(False))

    async def _send(self, run_id: str | None, feedback: Feedback) -> tuple[Any, str]:
        if not run_id:
            return None, "✖ No finished run to give feedback on."
        try:
            view = await self.client.send_feedback(run_id, feedback)
        except ApiError as exc:
            return gr.skip(), f"✖ Not saved: {exc.detail if exc.status else exc}"
        return view.model_dump(mode="json"), learning_message(view)

    async def rate(self, rating: str, run_id: str | None, learned: Learned) -> tuple[Any, ...]:
        """Keep the correction and comment already saved; change the rating."""
        before = LearningView.model_validate(learned) if learned else None
        saved, note = await self._send(run_id, Feedback(
            rating="up" if rating == "up" else "down",
            correction=before.correction if before else None, comment=before.comment if before else None))
        kept = saved if isinstance(saved, dict) else learned
        return (saved, note, *_buttons(kept.get("rating") if kept else None))

    async def save(self, run_id: str | None, text: str, original: str | None, comment: str,
                   learned: Learned) -> tuple[Any, str]:
        """Send the edited plan as the correction (an unchanged plan corrects nothing) and the comment."""
        before = LearningView.model_validate(learned) if learned else None
        try:
            edited = parse_plan(text or "")
        except ValueError as exc:
            return gr.skip(), f"✖ Not saved: {exc}"
        unchanged = original is not None and original != BLANK_PLAN and edited == parse_plan(original)
        correction = (before.correction if before else None) if unchanged else edited
        return await self._send(run_id, Feedback(rating=before.rating if before else None, correction=correction,
                                                 comment=(comment or "").strip() or None))


@dataclass
class FeedbackForm:
    box: Any
    prepare: Any  # FeedbackHandlers.prepare: run id → the form's outputs
    outputs: list[Any]  # what ``prepare`` fills


def feedback_form(client: ApiClient, run_id: Any) -> FeedbackForm:
    """Build the form (hidden until a run ends) inside the current Blocks and wire its events."""
    original, learned = gr.State(None), gr.State(None)
    with gr.Column(visible=False, elem_id="feedback", variant="panel") as box:
        with gr.Row(elem_id="feedback-row"):
            gr.Markdown("**Was this right?**", elem_id="feedback-ask")
            up = gr.Button("👍 Good", elem_id="fb-up", size="sm", scale=0, min_width=110)
            down = gr.Button("👎 Bad", elem_id="fb-down", size="sm", scale=0, min_width=110)
        with disclosure("Correct the plan", "fb-correct") as editor:
            plan = gr.Textbox(label="The plan it should have made (JSON); future plans learn from it", lines=12,
                              max_lines=30, elem_id="fb-plan", elem_classes="mono")
            comment = gr.Textbox(label="Comment (optional)", lines=2, elem_id="fb-comment")
            save = gr.Button("Save", variant="primary", elem_id="fb-save", size="sm")
        result = gr.Markdown(elem_id="fb-result")
    h = FeedbackHandlers(client, editor)
    up.click(h.rate, [gr.State("up"), run_id, learned], [learned, result, up, down], api_visibility="private")
    down.click(h.rate, [gr.State("down"), run_id, learned], [learned, result, up, down], api_visibility="private")
    save.click(h.save, [run_id, plan, original, comment, learned], [learned, result], api_visibility="private")
    return FeedbackForm(box, h.prepare, [box, plan, original, learned, result, up, down, comment, *editor.parts])
