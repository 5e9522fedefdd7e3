"""What a person must see before approving, rendered: who an action reaches (external and new
addresses flagged, where a reply's address came from), its warnings and why it cannot be approved
with its group; a group's every distinct recipient and domain; an event change as before → after.

All of it comes from the server's review (``ActionView.review``, ``core.recipients``), which reads
the real objects; every value is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from core.action_schemas import ActionReview, ApprovalGroup, GroupRecipient, Recipient
from core.recipients import added_attendees, removed_attendees

DIFF_KEYS = ("title", "start", "end", "attendees", "location", "description")
DIFF_LABELS = {"title": "Title", "start": "Start", "end": "End", "attendees": "Attendees", "location": "Where",
               "description": "Description"}


def flags_html(external: bool, new: bool) -> str:
    parts = ['<span class="act-flag" data-flag="external">external</span>' if external else "",
             '<span class="act-flag" data-flag="new">never approved before</span>' if new else ""]
    return " ".join(p for p in parts if p)


def _recipient_row(r: Recipient) -> str:
    source = f' <span class="act-source">({escape(r.source)})</span>' if r.source else ""
    return (f'<li data-address="{escape(r.address)}" data-external="{str(r.external).lower()}" '
            f'data-new="{str(r.new).lower()}">{escape(", ".join(r.roles))}: <b>{escape(r.address)}</b> '
            f'{flags_html(r.external, r.new)}{source}</li>')


def notes_html(warnings: Sequence[str], outliers: Sequence[str]) -> str:
    warn = "".join(f'<div class="act-warn">⚠ {escape(w)}</div>' for w in warnings)
    alone = ("" if not outliers else '<div class="act-outlier">✋ Approve this one on its own (not with "Approve '
             'all"): ' + "; ".join(escape(o) for o in outliers) + "</div>")
    return warn + alone


def review_html(review: ActionReview | None) -> str:
    """An action's recipients, flagged, and its warnings; nothing when it was not reviewed."""
    if review is None:
        return ""
    people = ("".join(_recipient_row(r) for r in review.recipients) if review.recipients else "")
    listed = f'<ul class="act-recipients">{people}</ul>' if people else ""
    return f'<div class="act-review">{notes_html(review.warnings, review.outliers)}{listed}</div>'


def _value(value: Any) -> str:
    if value is None or value == "" or value == []:
        return '<span class="act-none">(none)</span>'
    if isinstance(value, list):
        return escape(", ".join(str(v) for v in value))
    text = str(value)
    return f'<pre class="act-text">{escape(text)}</pre>' if "\n" in text or len(text) > 120 else escape(text)


def event_diff_html(arguments: Mapping[str, Any]) -> str:
    """An event change as it is in Calendar now → after the change, each changed field, and who is
    added or removed."""
    before = arguments.get("before")
    if not isinstance(before, Mapping):
        return '<div class="act-warn">⚠ The event could not be read from Calendar: its current state is unknown.</div>'
    rows = [f'<tr data-key="{escape(k)}"><th>{escape(DIFF_LABELS[k])}</th><td>{_value(before.get(k))}</td>'
            f'<td>{_value(arguments[k])}</td></tr>' for k in DIFF_KEYS if k in arguments]
    added, removed = added_attendees(arguments), removed_attendees(arguments)
    who = "".join([f'<div class="act-added">Adds: <b>{escape(", ".join(added))}</b></div>' if added else "",
                   f'<div class="act-removed">Removes: {escape(", ".join(removed))}</div>' if removed else ""])
    title = escape(str(before.get("title") or arguments.get("event_id", "")))
    when = escape(" – ".join(str(before[k]) for k in ("start", "end") if before.get(k)))
    return (f'<div class="act-diff-head">Event <b>{title}</b> {when}, as it is in Google Calendar, and after the '
            f'change:</div><table class="act-args act-diff"><thead><tr><th></th><th>Now</th><th>After</th></tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table>{who}')


def _group_row(r: GroupRecipient) -> str:
    times = f" ×{r.actions}" if r.actions > 1 else ""
    return (f'<li data-address="{escape(r.address)}" data-external="{str(r.external).lower()}" '
            f'data-new="{str(r.new).lower()}"><b>{escape(r.address)}</b>{times} {flags_html(r.external, r.new)}</li>')


def group_recipients_html(summary: ApprovalGroup) -> str:
    """Every distinct recipient and domain of a group (none left out), and its outliers."""
    if not summary.recipients:
        people = '<div class="act-none">These reach no one outside your account.</div>'
    else:
        domains = ", ".join(f"{escape(d)} ({n})" for d, n in summary.domains.items())
        people = (f'<div class="act-group-who"><b>Reaches {len(summary.recipients)} distinct recipient(s)'
                  f'{f" at {len(summary.domains)} domain(s): {domains}" if summary.domains else ""}</b>'
                  f'<ul class="act-recipients">{"".join(_group_row(r) for r in summary.recipients)}</ul></div>')
    flagged = "".join(f'<li data-action="{escape(aid)}">{escape(aid[:12])}: {escape("; ".join(why))}</li>'
                      for aid, why in summary.outliers.items())
    outliers = ("" if not flagged else
                f'<div class="act-outlier">✋ {len(summary.outliers)} of these cannot be approved with "Approve all": '
                f'pick each below, read it, and approve it on its own.<ul>{flagged}</ul></div>')
    warned = sum(1 for aid in summary.warnings if aid not in summary.outliers)
    warn = f'<div class="act-warn">⚠ {warned} more carry a warning: read them below.</div>' if warned else ""
    return (f'<div class="act-group-review" data-recipients="{len(summary.recipients)}" '
            f'data-domains="{len(summary.domains)}" data-outliers="{len(summary.outliers)}">{people}{outliers}'
            f'{warn}</div>')
