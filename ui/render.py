"""Chat page rendering: pure functions from run state and API data to markdown and HTML.

The chat renders markdown: what goes into it has no images and no HTML that loads anything (the
server stores model text cleaned already; this holds for text from before that, and for a summary as
it streams). HTML built here escapes every value.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from typing import Any

from core.memory_schemas import LearningView
from core.schemas import ConversationView, Draft, MemorySource
from core.text import strip_remote_content
from ui.progress import RunProgress, StepProgress

# Plain unicode (headless browsers and many desktops have no emoji font).
SYMBOLS = {"pending": "○", "ready": "·", "running": "◐", "retried": "↻", "requeued": "↻", "failed": "↻",
           "done": "✔", "dead": "✖", "blocked": "⊘", "waiting": "⏸", "cancelled": "■"}
STATUS_WORDS = {"failed": "retrying", "retried": "retrying", "requeued": "queued again", "ready": "queued"}
ChatMessages = list[dict[str, str]]
DOCUMENT_COLLECTIONS = ("documents", "sops")
COLLECTION_WORDS = {"documents": "document", "sops": "SOP", "conversations": "conversation",
                    "learnings": "past run"}


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} m {int(seconds % 60):02d} s"


def fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


def short(text: str | None, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("value") or "")
    if isinstance(content, list):
        return "".join(_text_of(part) for part in content)
    return "" if content is None else str(content)


def normalise_history(value: Sequence[Any] | None) -> ChatMessages:
    """The Chatbot's value back as ``[{"role", "content": str}]`` (Gradio 6 sends content as parts)."""
    out: ChatMessages = []
    for msg in value or []:
        role = msg.get("role") if isinstance(msg, dict) else getattr(msg, "role", None)
        content = msg.get("content") if isinstance(msg, dict) else getattr(msg, "content", None)
        if role in ("user", "assistant"):
            out.append({"role": str(role), "content": _text_of(content)})
    return out


def conversation_messages(view: ConversationView) -> ChatMessages:
    return [{"role": m.role, "content": strip_remote_content(m.content)} for m in view.messages]


def bubble(p: RunProgress) -> str:
    """The assistant's reply while the run goes: planning, working, the summary as it streams
    (markdown that loads nothing)."""
    return strip_remote_content(_bubble(p))


def _bubble(p: RunProgress) -> str:
    if p.status == "failed":
        partial = p.final_summary or p.summary
        return (partial + "\n\n" if partial else "") + f"✖ The run failed: {p.error or 'no reason given'}"
    if p.final_summary is not None:
        return p.final_summary
    if p.summary:
        return p.summary + " ▍"
    if p.status == "planning":
        written = f" ({p.plan_chars} characters so far)" if p.plan_chars else ""
        return f"◐ Planning{written}…"
    done, total = p.counts()
    if p.status == "summarizing" or (total and done == total):
        return f"◐ All {total} steps finished; writing the summary…"
    waiting = f"\n\n_Waiting: {p.error}_" if p.error else ""
    return f"◐ Working: {done} of {total} steps done.{waiting}"


def _step_html(s: StepProgress, now: float, spread: bool) -> str:
    word = STATUS_WORDS.get(s.status, s.status)
    took = fmt_seconds(s.seconds(now))
    where = f"node {s.node}" if spread and s.node else ""
    meta = " · ".join(x for x in (word, took, f"attempt {s.attempts}" if s.attempts else "", where) if x)
    body = ""
    if s.output:
        body += f'<div class="step-label">Output</div><pre class="step-out">{escape(s.output)}</pre>'
    if s.error:
        body += f'<div class="step-label">Error</div><pre class="step-err">{escape(s.error)}</pre>'
    if not body:
        body = '<div class="step-none">No output yet.</div>'
    return (f'<details class="step" data-step="{escape(s.step_id)}" data-status="{escape(s.status)}" '
            f'data-node="{escape(s.node or "")}">'
            f'<summary><span class="sym">{SYMBOLS.get(s.status, "·")}</span>'
            f'<span class="agent">{escape(s.agent)}</span>'
            f'<span class="instr" title="{escape(s.instruction)}">{escape(short(s.instruction, 90))}</span>'
            f'<span class="meta">{escape(meta)}</span></summary>'
            f'<div class="step-body"><div class="step-instr">{escape(s.instruction)}</div>{body}</div></details>')


def _no_steps(p: RunProgress) -> str:
    if p.status == "failed":
        return f"✖ No plan: {p.error or 'the run failed'}"
    if p.ended and p.final_summary is not None:
        return "Answered in the chat: no steps were needed."
    if p.ended:
        return "The run ended without steps."
    return "◐ Writing the plan…"


def plan_html(p: RunProgress | None, now: float | None = None) -> str:
    """The plan as a live checklist; each step opens to its output or error."""
    if p is None:
        return ('<div class="plan plan-empty" id="plan-checklist">The plan appears here once you ask for '
                'something: every step, its agent, state and output.</div>')
    now = time.time() if now is None else now
    done, total = p.counts()
    state = "ended" if p.ended else "live"
    head = f'<div class="plan-head"><b>Plan</b> <span class="plan-count">{done}/{total} done</span></div>'
    if not p.steps:
        return (f'<div class="plan" id="plan-checklist" data-state="{state}">{head}'
                f'<div class="plan-empty">{escape(_no_steps(p))}</div></div>')
    goal = f'<div class="plan-goal">{escape(p.goal)}</div>' if p.goal else ""
    steps = "".join(_step_html(s, now, p.spread) for s in p.steps.values())
    return f'<div class="plan" id="plan-checklist" data-state="{state}">{head}{goal}{steps}</div>'


def drafts_html(drafts: Sequence[Draft]) -> str:
    if not drafts:
        return ""
    items = "".join(
        f'<details class="draft" data-channel="{escape(d.channel)}"><summary><span class="badge">draft · not sent'
        f'</span> <b>{escape(d.channel)}</b> to {escape(short(d.target, 60))}'
        f'{": " + escape(short(d.subject, 60)) if d.subject else ""}</summary>'
        f'<pre class="step-out">{escape(d.body)}</pre></details>'
        for d in drafts
    )
    return (f'<div class="drafts" id="drafts-list"><div class="plan-head"><b>Drafts</b> '
            f'<span class="plan-count">{len(drafts)} waiting; nothing was sent</span></div>{items}</div>')


def source_href(source: MemorySource) -> str:
    """Documents open in the Memory page's viewer (a new tab); other sources at their API path."""
    if source.collection in DOCUMENT_COLLECTIONS:
        return f"/?doc={source.source_id}"
    return _own_path(source.link)


def _own_path(link: str) -> str:
    """A link of this app (a path on it), else none: a source's link must not lead elsewhere."""
    return link if link.startswith("/") and not link.startswith(("//", "/\\")) else "#"


def source_html(s: MemorySource, snippet_chars: int = 280) -> str:
    heading = f'<span class="src-heading">› {escape(s.heading)}</span>' if s.heading else ""
    return (f'<div class="source" data-collection="{escape(s.collection)}" data-source="{escape(s.source_id)}">'
            f'<div class="src-line"><span class="src-coll">{escape(COLLECTION_WORDS.get(s.collection, s.collection))}'
            f'</span><a class="src-title" href="{escape(source_href(s))}" target="_blank">{escape(s.title)}</a>'
            f'{heading}<span class="src-score" title="similarity to the request">{s.score:.2f}</span>'
            f'<a class="src-api" href="{escape(_own_path(s.link))}" target="_blank">API</a></div>'
            f'<div class="src-snippet">{escape(short(s.snippet, snippet_chars))}</div></div>')


def sources_html(sources: Sequence[MemorySource], ended: bool = False) -> str:
    """What memory gave the model for this request, under the answer."""
    if not sources:
        return ('<div class="sources sources-none" id="sources-list">No memories were used for this request.</div>'
                if ended else "")
    items = "".join(source_html(s) for s in sources)
    return (f'<div class="sources" id="sources-list"><div class="plan-head"><b>Sources</b> <span class="plan-count">'
            f'{len(sources)} memor{"y" if len(sources) == 1 else "ies"} given to the model</span></div>{items}</div>')


def learning_message(view: LearningView) -> str:
    """The server's record of the feedback, in one line."""
    rating = {"up": "rated good", "down": "rated bad", None: "not rated"}[view.rating]
    parts = [rating, "plan corrected" if view.correction is not None else "plan as made"]
    if view.comment:
        parts.append("comment kept")
    example = ("used as an example for future plans" if view.usable
               else "not used as an example for future plans")
    return f"✔ Saved: {' · '.join(parts)}; {example}."
