"""Carrying out one approved Google action, looking (before any retry) whether it already
happened, and reading from Google what a person approves.

Mail is staged first: the message becomes a draft of its own, and the draft's id is recorded
(``record``) before the draft is sent. Gmail sends a draft once and deletes it, so a retry either
finds the draft still there (not sent: send it) or gone with the message in Sent (done). An event
is created under an id derived from the action id (a second insert is a 409), and a Drive file
carries ``appProperties.maos_action``. ``perform`` and ``already_done`` are synchronous: the
provider runs them in a worker thread with the user's API clients.

What a person approves is read from the real objects, never taken from the model (``ground``): a
reply's addressing comes from its thread (and says where the address came from), an event to
delete or change comes from Calendar as it is. Run when an action is proposed and again when a
person edits it (then the person's ``to`` and subject stand, and the rest is read again).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from core.action_schemas import ActionType
from core.errors import ToolError
from core.recipients import key
from integrations.google import drive, gcalendar, gmail
from integrations.registry import NoProvider, check_arguments

_EVENT_KEYS = ("title", "start", "end", "attendees", "location", "description")


class Services(Protocol):
    def get(self, name: str) -> Any: ...


# Runs ``fn(services)`` (the user's Google API clients) in a worker thread; Google's errors come back
# as ToolError for the model.
Fetch = Callable[[Callable[[Services], Any]], Awaitable[Any]]


def message_id_for(action_id: str) -> str:
    return f"<maos-{action_id}@master-agent-os.local>"


def perform(action: str, a: dict[str, Any], action_id: str, svc: Services, staged: dict[str, Any] | None,
            record: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Do it once; the ids of what was done. ``staged``: what an earlier attempt staged (recorded
    with ``record``, which must be durable when it returns)."""
    if action in ("send_email", "reply_email"):
        if staged is None:
            staged = gmail.stage(svc.get("gmail"), to=a["to"], cc=a.get("cc", []), subject=a["subject"],
                                 body=a["body"], message_id=message_id_for(action_id), thread_id=a.get("thread_id"),
                                 in_reply_to=a.get("in_reply_to"), references=a.get("references"))
            record(staged)
        sent = gmail.send_staged(svc.get("gmail"), staged["draft_id"])
        return {"message_id": sent["id"], "thread_id": sent.get("thread_id")}
    if action == "create_event":
        event = gcalendar.create_event(
            svc.get("calendar"), event_id=gcalendar.event_id_for(action_id), calendar_id=a["calendar_id"],
            title=a["title"], start=a["start"], end=a["end"], attendees=a["attendees"],
            description=a.get("description", ""), location=a.get("location", ""))
        return {"event_id": event["id"], "link": event.get("link")}
    if action == "update_event":
        changes = {k: v for k, v in a.items() if k not in ("event_id", "calendar_id", "before")}  # before: shown only
        event = gcalendar.update_event(svc.get("calendar"), calendar_id=a["calendar_id"], event_id=a["event_id"],
                                       changes=changes)
        return {"event_id": event.get("id", a["event_id"])}
    if action == "delete_event":
        gcalendar.delete_event(svc.get("calendar"), calendar_id=a["calendar_id"], event_id=a["event_id"])
        return {"event_id": a["event_id"], "deleted": True}
    if action == "create_drive_file":
        made = drive.create_doc(svc.get("drive"), title=a["title"], content=a["content"], action_id=action_id,
                                folder_id=a.get("folder_id"))
        return {"file_id": made["id"], "link": made.get("link")}
    raise NoProvider(f"Google does not carry out '{action}'")


def already_done(action: str, a: dict[str, Any], action_id: str, svc: Services,
                 staged: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ids of what an earlier attempt did, or None when it did not happen (safe to do it now).

    Raises when it cannot tell (Google unreachable): a person must look.
    """
    if action in ("send_email", "reply_email"):
        if staged is None:  # only a recorded draft is ever sent: nothing went out
            return None
        found = gmail.staged_outcome(svc.get("gmail"), staged)
        return None if found is None else {"message_id": found["id"], "thread_id": found.get("thread_id")}
    if action == "create_event":
        event = gcalendar.get_event(svc.get("calendar"), a["calendar_id"], gcalendar.event_id_for(action_id))
        return None if event is None else {"event_id": event["id"], "link": event.get("link")}
    if action == "update_event":
        return None  # a patch with the same changes is safe to repeat
    if action == "delete_event":
        event = gcalendar.get_event(svc.get("calendar"), a["calendar_id"], a["event_id"])
        return {"event_id": a["event_id"], "deleted": True} if event is None else None
    if action == "create_drive_file":
        made = drive.find_created(svc.get("drive"), action_id)
        return None if made is None else {"file_id": made["id"], "link": made.get("link")}
    raise NoProvider(f"cannot check whether '{action}' happened: Google does not carry it out")


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
