"""Approvals page rendering: pure functions from proposed actions, policies and audit entries to HTML,
rows and form values.

Everything an action carries (recipients, subjects, bodies, the server's summary) is data written
by an agent or by whoever sent the mail it read: it is escaped everywhere and never trusted as an
instruction, however it is phrased.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from html import escape
from typing import Any

from core.action_schemas import (
    ACTION_LABELS,
    ACTION_TYPES,
    ActionType,
    ActionView,
    ApprovalGroup,
    AuditEntry,
    BatchResult,
    Policy,
)
from core.recipients import SOURCES, summarize_group
from ui.recipient_views import event_diff_html, group_recipients_html, review_html
from ui.render import fmt_time, short

SAMPLE = 3  # actions of a group shown in full
POLICIES: tuple[Policy, ...] = ("ask", "allow", "deny")
POLICY_CHOICES = [("ask: a person approves each one (default, safest)", "ask"),
                  ("allow: runs with no one looking", "allow"), ("deny: never runs", "deny")]
RECENT_HEADERS = ["When", "Status", "Type", "Summary", "Decided by", "Result or error"]
AUDIT_HEADERS = ["When", "Who asked", "Actor", "Approved by", "Action", "Run", "Step", "Subject", "Detail"]
STATUS_SYMBOLS = {"pending": "○", "approved": "·", "executing": "◐", "done": "✔", "failed": "✖",
                  "needs_review": "⚠", "rejected": "⊘", "expired": "⌛", "superseded": "↻"}
# The keys people look at first, per action type (those of integrations/actions/args.py); any other key
# follows in the order it came.
KEY_ORDER: dict[str, tuple[str, ...]] = {
    "send_email": ("to", "cc", "subject", "body"),
    "reply_email": ("to", "to_source", "sender", "reply_to", "subject", "body", "thread_id", "in_reply_to",
                    "references"),
    "create_event": ("title", "start", "end", "attendees", "location", "description", "calendar_id"),
    "update_event": ("event_id", "title", "start", "end", "attendees", "location", "description", "calendar_id"),
    "delete_event": ("title", "start", "end", "attendees", "organizer", "event_id", "calendar_id"),
    "create_drive_file": ("title", "folder_id", "content"),
    "send_text": ("to", "body"),
    "place_call": ("to", "script"),
}
KEY_LABELS = {"to": "To", "cc": "Cc", "subject": "Subject", "body": "Body", "thread_id": "Thread",
              "in_reply_to": "In reply to", "references": "References", "title": "Title", "start": "Start",
              "end": "End", "attendees": "Attendees", "location": "Where", "description": "Description",
              "calendar_id": "Calendar", "event_id": "Event", "folder_id": "Folder", "content": "Content",
              "script": "Script", "to_source": "Address from", "sender": "Replying to (From)",
              "reply_to": "Its Reply-To", "organizer": "Organizer"}
HIDDEN_KEYS = {"update_event": {"before"}}  # shown another way (the event as it is, then after the change)
LONG_KEYS = {"body", "description", "content", "script"}  # shown as blocks of text
SUMMARY_KEYS = ("to", "title", "start", "subject", "event_id", "thread_id")


@dataclass(frozen=True)
class ActionGroup:
    """Pending actions of one run and type: they are approved or rejected together."""

    key: str
    action: ActionType
    run_id: str | None
    actions: tuple[ActionView, ...]
    owner: str | None = None  # the name of whoever named you their delegate, when the actions are theirs

    @property
    def header(self) -> str:
        run = f"run {self.run_id[:8]}" if self.run_id else "no run"
        return f"{len(self.actions)} × {label(self.action)} · {run}{f' · for {self.owner}' if self.owner else ''}"

    @cached_property
    def summary(self) -> ApprovalGroup:
        """Every distinct recipient and domain, and the outliers (from the server's review)."""
        return summarize_group(self.key, self.actions)

    @property
    def approve_all(self) -> str:
        """The "Approve all" button's label; with outliers it is disabled (see ``can_approve_all``)."""
        n, odd = len(self.actions), len(self.summary.outliers)
        return f"Approve all {n}" if not odd else f"Approve all {n}: {odd} need approving one by one"

    @property
    def can_approve_all(self) -> bool:
        return self.summary.approve_all

    def seen(self) -> dict[str, Any]:
        """What the buttons decide on: each action's id and args_hash as shown (kept in a gr.State)."""
        return {"key": self.key, "items": [{"id": a.id, "args_hash": a.args_hash} for a in self.actions]}


def label(action: str) -> str:
    return ACTION_LABELS.get(action, action.replace("_", " "))


def group_actions(actions: Sequence[ActionView], owners: Mapping[str, str] | None = None) -> list[ActionGroup]:
    """Pending actions by group, in the order the listing has them (newest first): a group comes where
    its newest action does. ``owners``: id → name of those who named you their delegate (their groups
    say whose they are)."""
    found: dict[str, list[ActionView]] = {}
    for a in actions:
        if a.status == "pending":
            found.setdefault(a.group, []).append(a)
    return [ActionGroup(key, items[0].action, items[0].run_id, tuple(items), (owners or {}).get(items[0].user_id))
            for key, items in found.items()]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict) and set(value) <= {"dateTime", "date", "timeZone"}:  # a Google event time
        when = str(value.get("dateTime") or value.get("date") or "")
        return f"{when} ({value['timeZone']})" if value.get("timeZone") else when
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def ordered_keys(action: str, arguments: Mapping[str, Any]) -> list[str]:
    hidden = HIDDEN_KEYS.get(action, set())
    first = [k for k in KEY_ORDER.get(action, ()) if k in arguments]
    return first + [k for k in arguments if k not in first and k not in hidden]


def arguments_html(action: str, arguments: Mapping[str, Any]) -> str:
    """Every argument, escaped: the known ones first, long text as a block, start and end on one line."""
    rows: list[str] = []
    keys = ordered_keys(action, arguments)
    for key in keys:
        value = arguments[key]
        if key == "end" and "start" in arguments:
            continue
        name = KEY_LABELS.get(key, key.replace("_", " ").capitalize())
        text = SOURCES.get(str(value), str(value)) if key == "to_source" else _text(value)
        if key == "start" and "end" in arguments:
            name, text = "When", f"{text} – {_text(arguments['end'])}"
        if key in LONG_KEYS or "\n" in text:
            cell = f'<pre class="act-text">{escape(text)}</pre>'
        else:
            cell = escape(text) if text else '<span class="act-none">(empty)</span>'
        rows.append(f'<tr data-key="{escape(key)}"><th>{escape(name)}</th><td>{cell}</td></tr>')
    if not rows:
        return '<div class="act-none">No arguments.</div>'
    return f'<table class="act-args"><tbody>{"".join(rows)}</tbody></table>'


def arguments_summary(action: str, arguments: Mapping[str, Any], limit: int = 100) -> str:
    """One line: who or what it goes to and its subject or title (no bodies)."""
    parts = [f"{KEY_LABELS.get(k, k).lower()} {_text(arguments[k])}" for k in SUMMARY_KEYS
             if k in arguments and _text(arguments[k])]
    return short(" · ".join(parts[:3]) or label(action), limit)


def choice_label(a: ActionView, owners: Mapping[str, str] | None = None) -> str:
    """A pending action in the pick list; one to approve on its own (an outlier) is marked ✋; another
    person's (``owners``: those who named you their delegate) says whose."""
    mark = "✋ " if a.review is not None and a.review.outliers else ""
    owner = (owners or {}).get(a.user_id)
    return (f"{mark}{label(a.action)} · {arguments_summary(a.action, a.arguments, 80)} · {a.id[:8]}"
            f"{f' · for {owner}' if owner else ''}")


def fmt_until(deadline: float, now: float) -> str:
    left = deadline - now
    if left <= 0:
        return "expired"
    if left < 3600:
        return f"expires in {max(int(left // 60), 1)} min"
    if left < 2 * 86_400:
        return f"expires in {int(left // 3600)} h"
    return f"expires in {int(left // 86_400)} days"


def action_html(a: ActionView, now: float | None = None) -> str:
    """One action in full, exactly as it will be carried out."""
    now = time.time() if now is None else now
    where = " · ".join(x for x in (f"run {escape(a.run_id[:8])}" if a.run_id else "",
                                   f"step {escape(a.task_id)}" if a.task_id else "") if x)
    meta = " · ".join(x for x in (f"proposed {fmt_time(a.created_at)}", where,
                                  fmt_until(a.expires_at, now) if a.status == "pending" else escape(a.status),
                                  f"fingerprint {escape(a.args_hash[:12])}") if x)
    edit = f' · edit of {escape(a.replaces[:8])}' if a.replaces else ""
    return (f'<div class="act" data-action="{escape(a.id)}" data-type="{escape(a.action)}" '
            f'data-status="{escape(a.status)}"><div class="act-head"><b>{escape(label(a.action))}</b> '
            f'<span class="act-summary">{escape(a.summary)}</span></div>'
            f'<div class="rec-meta">{meta}{edit}</div>{review_html(a.review)}{real_object_html(a)}'
            f'{arguments_html(a.action, a.arguments)}</div>')


def real_object_html(a: ActionView) -> str:
    """What an event action is about, as read from Google Calendar (not as the model described it)."""
    if a.action == "update_event":
        return event_diff_html(a.arguments)
    if a.action == "delete_event":
        return '<div class="act-diff-head">The event as it is in Google Calendar:</div>'
    return ""


def group_html(group: ActionGroup, now: float | None = None) -> str:
    """A group's header, every distinct recipient and domain (flagged) and its outliers, then a sample
    of its actions in full; the rest are counted."""
    sample = "".join(action_html(a, now) for a in group.actions[:SAMPLE])
    rest = len(group.actions) - SAMPLE
    more = (f'<div class="act-more">… and {rest} more like these (pick one below to read it).</div>'
            if rest > 0 else "")
    return (f'<div class="act-group" data-group="{escape(group.key)}" data-count="{len(group.actions)}">'
            f'<h4 class="act-group-head">{escape(group.header)}</h4>{group_recipients_html(group.summary)}'
            f'{sample}{more}</div>')


def pending_note(actions: Sequence[ActionView], groups: Sequence[ActionGroup], shown: int) -> str:
    pending = sum(1 for a in actions if a.status == "pending")
    if not pending:
        return "Nothing waits for you."
    hidden = len(groups) - shown
    extra = f" The {hidden} other group(s) show once these are decided." if hidden > 0 else ""
    return f"**{pending}** action(s) wait for you in {len(groups)} group(s).{extra}"


def nav_label(pending: int | None, capped: bool = False) -> str:
    """The sidebar entry, with the count of pending actions when there are any."""
    if not pending:
        return "Approvals"
    return f"Approvals ({pending}{'+' if capped else ''})"


def batch_message(decision: str, result: BatchResult, asked: int) -> str:
    verb = "Approved" if decision == "approve" else "Rejected"
    line = f"✔ {verb} {len(result.done)} of {asked}."
    if result.refused:
        why = "; ".join(f"{i[:8]}: {reason}" for i, reason in list(result.refused.items())[:5])
        more = " …" if len(result.refused) > 5 else ""
        line += f" ✖ {len(result.refused)} refused: {why}{more}"
    return line


def decided_message(a: ActionView) -> str:
    words = {"approved": "Approved", "rejected": "Rejected", "done": "Approved and done",
             "executing": "Approved, running", "failed": "Approved but failed"}
    return f"✔ {words.get(a.status, a.status)}: {a.summary} ({a.id[:8]})"


def _result_text(a: ActionView) -> str:
    if a.error:
        return a.error
    return ", ".join(f"{k}: {_text(v)}" for k, v in (a.result or {}).items())


def recent_rows(actions: Sequence[ActionView], limit: int = 50) -> list[list[Any]]:
    """Decided and done actions (never pending ones), newest first."""
    done = [a for a in actions if a.status != "pending"][:limit]
    return [[fmt_time(a.decided_at or a.created_at), f"{STATUS_SYMBOLS.get(a.status, '·')} {a.status}",
             label(a.action), short(a.summary, 90), a.decided_by or "", short(_result_text(a), 90)] for a in done]


def audit_rows(entries: Sequence[AuditEntry]) -> list[list[Any]]:
    def when(ts: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))

    return [[when(e.occurred_at), e.user_id or "", e.actor, e.approved_by or "", e.action, e.run_id or "",
             e.task_id or "", e.subject_id or "", ", ".join(f"{k}={_text(v)}" for k, v in e.detail.items())]
            for e in sorted(entries, key=lambda e: e.occurred_at, reverse=True)]


# --- the policy form --------------------------------------------------------------------------------


def policy_values(policies: Mapping[str, str] | None) -> list[str]:
    """The form's dropdowns, one per action type in ACTION_TYPES order ("ask" where none is set)."""
    return [(policies or {}).get(t, "ask") for t in ACTION_TYPES]


def policy_changes(values: Sequence[str | None], saved: Mapping[str, str] | None) -> dict[ActionType, Policy]:
    """What the form changes against the policies loaded (a type with none is "ask"); every type
    when none were loaded."""
    out: dict[ActionType, Policy] = {}
    for action, value in zip(ACTION_TYPES, values, strict=True):
        for policy in POLICIES:
            if value == policy and (saved is None or saved.get(action, "ask") != policy):
                out[action] = policy
    return out


def policy_note(policies: Mapping[str, str]) -> str:
    allowed = [label(t) for t in ACTION_TYPES if policies.get(t) == "allow"]
    denied = [label(t) for t in ACTION_TYPES if policies.get(t) == "deny"]
    if not allowed and not denied:
        return "Every action waits for a person (ask)."
    parts = [f"⚠ Runs with no one looking: {', '.join(allowed)}." if allowed else "",
             f"Never runs: {', '.join(denied)}." if denied else ""]
    return " ".join(p for p in parts if p)


# --- the edit form ----------------------------------------------------------------------------------

MAIL_FIELDS = ("to", "cc", "subject", "body")
EVENT_FIELDS = ("title", "start", "end", "attendees", "description")
FORM_FIELDS = MAIL_FIELDS + EVENT_FIELDS  # the form's text boxes (named as the arguments), in order
EDIT_FIELDS: dict[str, tuple[str, ...]] = {  # the boxes each action type can be edited in
    "send_email": MAIL_FIELDS, "reply_email": ("to", "subject", "body"),
    "create_event": EVENT_FIELDS, "update_event": EVENT_FIELDS,
}
LIST_FIELDS = {"to", "cc", "attendees"}  # comma-separated in the form; a list unless the action had a string
TEXT_FIELDS = {"body", "description"}  # kept as typed (no trimming)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, list)
                                                       and all(isinstance(v, str) for v in value))


def edit_fields(action: str, arguments: Mapping[str, Any]) -> tuple[str, ...]:
    """The boxes to edit the action in; none (edit the JSON) when its type has none or a value is
    not plain text or a list of it."""
    fields = EDIT_FIELDS.get(action, ())
    return fields if all(_plain(arguments.get(f)) for f in fields) else ()


def edit_mode(action: str, arguments: Mapping[str, Any]) -> str:
    """``mail`` or ``event`` (a form of fields) when the arguments fit one; ``json`` otherwise."""
    fields = edit_fields(action, arguments)
    return "json" if not fields else "mail" if fields[0] in MAIL_FIELDS else "event"


def edit_values(action: str, arguments: Mapping[str, Any]) -> dict[str, str]:
    """The form prefilled: every box of FORM_FIELDS (blank where the action has none) and ``json``."""
    values = dict.fromkeys(FORM_FIELDS, "")
    for field in edit_fields(action, arguments):
        values[field] = _text(arguments.get(field))
    values["json"] = json.dumps(dict(arguments), indent=2, ensure_ascii=False)
    return values


def edited_arguments(action: str, arguments: Mapping[str, Any], values: Mapping[str, str | None]) -> dict[str, Any]:
    """The whole set of arguments after the edit (keys the form has no field for are kept), or
    ValueError saying what is wrong with the JSON."""
    fields = edit_fields(action, arguments)
    if not fields:
        try:
            edited = json.loads(values.get("json") or "")
        except json.JSONDecodeError as exc:
            raise ValueError(f"the arguments are not valid JSON (line {exc.lineno}, column {exc.colno}: "
                             f"{exc.msg})") from exc
        if not isinstance(edited, dict):
            raise ValueError("the arguments must be a JSON object ({...})")
        return edited
    out = dict(arguments)
    for field in fields:
        text, old = values.get(field) or "", arguments.get(field)
        new: Any
        if field in LIST_FIELDS and not isinstance(old, str):
            new = [p.strip() for p in text.replace(";", ",").replace("\n", ",").split(",") if p.strip()]
        else:
            new = text if field in TEXT_FIELDS else text.strip()
        if not new and not old:
            continue  # left blank where there was nothing: not added
        out[field] = new
    return out
