"""Actions that leave the machine, as sub-agent tools: each one only *proposes* the action.

What happens next is the user's decision, not the model's: by default a person approves it on the
Approvals page (the observation says so); an "allow" policy runs it at once; "deny" refuses it.
No argument, and no text the model read, can approve or widen an action.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from actors.agents.context import ToolContext
from core.action_schemas import ActionType, ActionView
from core.errors import ToolError


def _outcome(view: ActionView) -> str:
    if view.status == "pending":
        return (f"Proposed {view.action} as action {view.id}. It has NOT happened: it waits for the user's approval "
                "on the Approvals page. Do not propose it again.")
    if view.status == "rejected" and view.decided_by == "policy":
        return f"Refused: the user's policy does not allow {view.action}. It did not happen; do not retry."
    if view.status in ("approved", "executing"):
        return f"Action {view.id} ({view.action}) is approved by the user's policy and is being carried out."
    if view.status == "done":
        return f"Action {view.id} ({view.action}) is done: {view.result}."
    return f"Action {view.id} ({view.action}) is {view.status}" + (f": {view.error}" if view.error else ".")


async def propose(ctx: ToolContext, action: ActionType, arguments: dict[str, Any]) -> str:
    if ctx.workspace is None:
        raise ToolError("outbound actions are not available (no workspace): nothing was sent")
    view = await ctx.workspace.propose(ctx.user_id, ctx.run_id, ctx.task_id, ctx.idempotency_key, action, arguments)
    return _outcome(view)


async def send_email(ctx: ToolContext, to: list[str], subject: str, body: str, cc: list[str] | None = None) -> str:
    """Send an email from the user's Gmail. It is proposed for the user's approval, not sent at once.

    Args:
        to: Recipient email addresses.
        subject: Subject line.
        body: Plain-text body.
        cc: Addresses to copy.
    """
    return await propose(ctx, "send_email", {"to": to, "cc": cc or [], "subject": subject, "body": body})


async def reply_email(ctx: ToolContext, thread_id: str, body: str) -> str:
    """Reply in a Gmail thread, to its last sender. It is proposed for the user's approval, not sent at once.

    Args:
        thread_id: The thread to reply in (from gmail_search or gmail_read_thread).
        body: Plain-text body of the reply.
    """
    return await propose(ctx, "reply_email", {"thread_id": thread_id, "body": body})


async def create_event(
    ctx: ToolContext, title: str, start: str, end: str, attendees: list[str] | None = None,
    description: str = "", location: str = "",
) -> str:
    """Create a Google Calendar event and invite attendees. Proposed for the user's approval first.

    Args:
        title: Event title.
        start: Start, ISO datetime (UTC when no offset), e.g. 2030-01-07T15:00.
        end: End, ISO datetime.
        attendees: Email addresses to invite.
        description: Agenda or notes.
        location: Place or meeting link.
    """
    return await propose(ctx, "create_event", {"title": title, "start": start, "end": end,
                                               "attendees": attendees or [], "description": description,
                                               "location": location})


async def update_event(
    ctx: ToolContext, event_id: str, title: str | None = None, start: str | None = None, end: str | None = None,
    attendees: list[str] | None = None, description: str | None = None,
) -> str:
    """Change a Google Calendar event (only the fields given). Proposed for the user's approval first.

    Args:
        event_id: The event (from calendar_list_events).
        title: New title.
        start: New start, ISO datetime.
        end: New end, ISO datetime.
        attendees: The full new list of attendees' addresses.
        description: New description.
    """
    changes = {"title": title, "start": start, "end": end, "attendees": attendees, "description": description}
    return await propose(ctx, "update_event", {"event_id": event_id, **{k: v for k, v in changes.items() if v is not None}})


async def delete_event(ctx: ToolContext, event_id: str, title: str = "") -> str:
    """Delete (cancel) a Google Calendar event. Proposed for the user's approval first.

    Args:
        event_id: The event (from calendar_list_events).
        title: Its title, to show the user.
    """
    return await propose(ctx, "delete_event", {"event_id": event_id, "title": title})


async def create_drive_doc(ctx: ToolContext, title: Annotated[str, Field(max_length=300)], content: str) -> str:
    """Create a Google Doc in the user's Drive. Proposed for the user's approval first.

    Args:
        title: Document title.
        content: Its text.
    """
    return await propose(ctx, "create_drive_file", {"title": title, "content": content})


TOOLS = (send_email, reply_email, create_event, update_event, delete_event, create_drive_doc)
