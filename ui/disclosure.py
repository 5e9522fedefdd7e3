"""A form section that a button opens and closes: what the UI uses where an Accordion would hold inputs.

Gradio 6 renders a closed Accordion's children only when it first opens, and a few frames later
(after a tick and an animation frame) pushes the props it last had from the server into them again.
Text typed in that window is replaced by the old value without a sign: an edited plan was saved as
the plan as made. Here the section's inputs are rendered with the form that holds
them, and opening or closing only switches the section between shown and ``visible="hidden"`` (in
the page, not shown), so what a person types stays what is sent.

The section is created shown (Gradio 6.31 shows a Column built with ``visible="hidden"``); the handler
that reveals the enclosing form puts it in the state it should have, with :meth:`Disclosure.outputs`.
Keep the section's own inputs free of visibility updates: the approval review, whose fields each get
one as an action is picked, showed them in a section just switched to hidden (in one suite run), so
its edit form is inline instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gradio as gr


@dataclass
class Disclosure:
    label: str
    button: Any  # gr.Button: opens and closes the section
    column: Any  # gr.Column: the section
    opened: Any  # gr.State: whether it is open

    @property
    def parts(self) -> list[Any]:
        """What :meth:`outputs` fills, in order."""
        return [self.column, self.opened, self.button]

    def outputs(self, is_open: bool) -> tuple[Any, bool, Any]:
        return (gr.Column(visible=True if is_open else "hidden"), is_open,
                gr.Button(f"{'▾' if is_open else '▸'} {self.label}"))

    def toggle(self, is_open: bool | None) -> tuple[Any, bool, Any]:
        return self.outputs(not is_open)


@contextmanager
def disclosure(label: str, elem_id: str) -> Iterator[Disclosure]:
    """``with disclosure("Correct the plan", "fb-correct") as d:`` builds the button (``elem_id``) and,
    inside the block, the section's contents (``{elem_id}-section``)."""
    opened = gr.State(False)
    button = gr.Button(f"▸ {label}", elem_id=elem_id, elem_classes="disclosure", size="sm", variant="secondary")
    with gr.Column(elem_id=f"{elem_id}-section") as column:
        d = Disclosure(label, button, column, opened)
        yield d
    button.click(d.toggle, [opened], d.parts, queue=False, api_visibility="private", show_progress="hidden")
