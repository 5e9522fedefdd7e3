"""Outbound actions as drafts: email, calendar events, texts and calls. Nothing here sends anything.

Every draft is saved (``actors.storage.drafts``) with status 'draft' and waits for approval and an integration.
Its idempotency key is the step's key plus the channel and a hash of the arguments, so a retried
step that drafts the same thing again gets the existing draft back instead of a second one.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from actors.agents.context import ToolContext
from actors.agents.tools._common import args_hash, check_emails, iso, parse_when
from core.action_schemas import ActionType
from core.errors import ToolError
from core.storage_schemas import DraftChannel

Channel = DraftChannel
_NOT_SENT = "It has NOT been sent: it waits for approval and the {what} integration."
_WHAT = {"email": "email", "calendar": "calendar", "text": "texting", "call": "calling"}


async def _draft(ctx: ToolContext, channel: Channel, target: str, subject: str, body: str, key_args: dict[str, Any]) -> str:
    key = f"{ctx.idempotency_key}:{channel}:{args_hash(**key_args)}"
    draft = await ctx.store.save_draft(ctx.task_id, channel, target, subject, body, key)
    if channel in ("text", "call") and ctx.workspace is not None:  # texting and calling are gated actions too
        action: ActionType = "send_text" if channel == "text" else "place_call"
        args = {"to": target, "body": body} if channel == "text" else {"to": target, "script": body}
        try:
            view = await ctx.workspace.propose(ctx.user_id, ctx.run_id, ctx.task_id, ctx.idempotency_key, action, args)
            proposed = f" Proposed as action {view.id} ({view.status}) for the user's approval."
        except ToolError as exc:
            proposed = f" It was not proposed for sending: {exc}."
    else:
        proposed = ""
    if draft.created:
        saved = f"Saved {channel} draft {draft.id} for {target} (status: draft)."
    else:
        saved = (f"This {channel} draft already exists: {draft.id or 'unknown'} for {target} (status: draft); "
                 "not stored twice.")
    return f"{saved} {_NOT_SENT.format(what=_WHAT[channel])}{proposed}"


def _check_phone(to: str) -> str:
    number = to.strip()
    digits = sum(c.isdigit() for c in number)
    if not 7 <= digits <= 15 or any(c.isalpha() for c in number):
        raise ToolError(f"to: '{to}' is not a phone number (find_leads can look numbers up)")
    return number


async def draft_email(ctx: ToolContext, to: str, subject: str, body: str) -> str:
    """Draft an email for approval. It is stored as a draft and never sent by this tool.

    Args:
        to: Recipient email address; several may be separated by commas.
        subject: Subject line.
        body: Plain-text body of the email.
    """
    recipients = ", ".join(check_emails(to.replace(";", ",").split(","), "to"))
    if not subject.strip() or not body.strip():
        raise ToolError("subject and body must not be empty")
    return await _draft(ctx, "email", recipients, subject.strip(), body,
                        {"to": recipients, "subject": subject.strip(), "body": body})


async def draft_event(
    ctx: ToolContext,
    title: str,
    attendees: list[str],
    start: str,
    duration_minutes: Annotated[int, Field(ge=5, le=24 * 60)] = 30,
    agenda: str = "",
) -> str:
    """Draft a calendar event for approval. It is stored as a draft and no invitation is sent.

    Args:
        title: Event title.
        attendees: Email addresses of the people to invite.
        start: Start as ISO datetime: YYYY-MM-DDTHH:MM; without an offset it is UTC.
        duration_minutes: Length of the event in minutes.
        agenda: What the meeting is for.
    """
    people = check_emails(attendees, "attendees")
    if not title.strip():
        raise ToolError("title must not be empty")
    starts_at = iso(parse_when(start, "start"))
    body = f"start: {starts_at}\nduration_minutes: {duration_minutes}\n\n{agenda.strip()}".rstrip()
    return await _draft(ctx, "calendar", ", ".join(people), title.strip(), body,
                        {"title": title.strip(), "attendees": people, "start": starts_at,
                         "duration_minutes": duration_minutes, "agenda": agenda.strip()})


async def draft_text(ctx: ToolContext, to: str, body: str) -> str:
    """Draft a text message (SMS) for approval. It is stored as a draft and never sent by this tool.

    Args:
        to: Phone number, international format preferred, e.g. '+15551234567'.
        body: Text of the message, short.
    """
    number = _check_phone(to)
    if not body.strip():
        raise ToolError("body must not be empty")
    return await _draft(ctx, "text", number, "", body.strip(), {"to": number, "body": body.strip()})


async def draft_call(ctx: ToolContext, to: str, script: str) -> str:
    """Draft a phone call (who to call and what to say) for approval. No call is placed by this tool.

    Args:
        to: Phone number to call.
        script: What to say on the call: opening, key points, the ask.
    """
    number = _check_phone(to)
    if not script.strip():
        raise ToolError("script must not be empty")
    return await _draft(ctx, "call", number, "", script.strip(), {"to": number, "script": script.strip()})


async def list_drafts(
    ctx: ToolContext, channel: Channel | None = None, limit: Annotated[int, Field(ge=1, le=50)] = 20
) -> dict[str, Any]:
    """List drafts waiting for approval, newest first. None of them has been sent.

    Args:
        channel: Only drafts of this kind: 'email', 'calendar', 'text' or 'call'.
        limit: Most drafts to return.
    """
    drafts = [
        {"id": d.id, "channel": d.channel, "to": d.target, "subject": d.subject or None,
         "body": d.body if len(d.body) <= 200 else d.body[:200] + "…", "status": d.status, "created": iso(d.created_at)}
        for d in await ctx.store.list_drafts(channel, limit)
    ]
    result: dict[str, Any] = {"count": len(drafts), "drafts": [{k: v for k, v in d.items() if v} for d in drafts]}
    result["note"] = "drafts are not sent until approved" if drafts else "no drafts yet"
    return result


TOOLS = (draft_email, draft_event, draft_text, draft_call, list_drafts)
