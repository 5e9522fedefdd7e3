"""Carrying out one approved action against Google, and looking, before any retry, whether it
already happened.

Mail is staged first: the message becomes a draft of its own, and the draft's id is recorded
(``record``) before the draft is sent. Gmail sends a draft once and deletes it, so a retry either
finds the draft still there (not sent: send it) or gone with the message in Sent (done). An event
is created under an id derived from the action id (a second insert is a 409), and a Drive file
carries ``appProperties.maos_action``. Synchronous: the Workspace actor runs these in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from core.errors import MaosError
from integrations.google import drive, gcalendar, gmail


class Services(Protocol):
    def get(self, name: str) -> Any: ...


class NoProvider(MaosError):
    """The action needs a provider this installation does not have (texting, calling)."""


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
    if action == "send_text":
        raise NoProvider("no texting provider is configured: the text was not sent")
    if action == "place_call":
        raise NoProvider("no calling provider is configured: the call was not placed")
    raise NoProvider(f"unknown action '{action}'")


def already_done(action: str, a: dict[str, Any], action_id: str, svc: Services,
                 staged: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ids of what an earlier attempt did, or None when it did not happen (safe to do it now).

    Raises when it cannot tell (Google unreachable, no provider to ask): a person must look.
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
    raise NoProvider(f"cannot check whether '{action}' happened: no provider to ask")
