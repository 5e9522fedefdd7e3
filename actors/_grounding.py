"""What a person approves is read from the real objects, never taken from the model: a reply's
addressing comes from its thread (and says where the address came from), an event to delete or
change comes from Calendar as it is. Whatever the model passed for these is replaced.

Run when an action is proposed and again when a person edits it (then the person's ``to`` and
subject stand, and the rest is read again).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from actors._action_args import check_arguments
from core.action_schemas import ActionType
from core.errors import ToolError
from core.recipients import key
from integrations.google import gcalendar, gmail

# Runs ``fn(services)`` (the user's Google API clients) in a worker thread; Google's errors come back
# as ToolError for the model.
Fetch = Callable[[Callable[[Any], Any]], Awaitable[Any]]
_EVENT_KEYS = ("title", "start", "end", "attendees", "location", "description")


async def ground(action: ActionType, args: dict[str, Any], fetch: Fetch, by_person: bool = False) -> dict[str, Any]:
    """``args`` (already checked) with what is read from Google filled in, checked again."""
    if action == "reply_email":
        thread_id = args["thread_id"]
        headers = await fetch(lambda s: gmail.reply_headers(s.get("gmail"), thread_id))
        to, source = headers["to"], headers["to_source"]
        if by_person and args.get("to") and {key(a) for a in args["to"]} != {key(a) for a in to}:
            to, source = args["to"], "person"
        subject = args.get("subject") if by_person and args.get("subject") else headers["subject"]
        args.update(to=to, subject=subject, in_reply_to=headers.get("in_reply_to"),
                    references=headers.get("references"), sender=headers.get("sender"),
                    reply_to=headers.get("reply_to") or [], to_source=source)
    elif action in ("delete_event", "update_event"):
        calendar_id, event_id = args.get("calendar_id") or "primary", args["event_id"]
        event = await fetch(lambda s: gcalendar.get_event(s.get("calendar"), calendar_id, event_id))
        if event is None:
            raise ToolError(f"{action}: there is no event '{event_id}' in calendar '{calendar_id}' (deleted already, "
                            "or a wrong id: list the events to find it)")
        if action == "delete_event":
            args.update(title=event.get("title") or "", start=event.get("start"), end=event.get("end"),
                        attendees=event.get("attendees") or [], organizer=event.get("organizer"))
        else:
            keep = ("title", "start", "end", "attendees") + tuple(k for k in _EVENT_KEYS if k in args)
            args["before"] = {k: event.get(k, "" if k in ("location", "description") else None)
                              for k in dict.fromkeys(keep)}
    else:
        return args
    return check_arguments(action, args)
