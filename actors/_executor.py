"""Carrying out one approved action against Google, and looking, before any retry, whether it
already happened.

Every action is made recognisable by its id: a sent message carries ``Message-ID:
<maos-<id>@master-agent-os.local>`` (found again with ``rfc822msgid:``), an event is created under
an id derived from the action id (a second insert is a 409), a Drive file carries
``appProperties.maos_action``. Synchronous: the Workspace actor runs these in a worker thread.
"""

from __future__ import annotations

from typing import Any, Protocol

from core.errors import MaosError
from integrations.google import drive, gcalendar, gmail


class Services(Protocol):
    def get(self, name: str) -> Any: ...


class NoProvider(MaosError):
    """The action needs a provider this installation does not have (texting, calling)."""


def message_id_for(action_id: str) -> str:
    return f"<maos-{action_id}@master-agent-os.local>"


def perform(action: str, a: dict[str, Any], action_id: str, svc: Services) -> dict[str, Any]:
    """Do it once; the ids of what was done."""
    if action in ("send_email", "reply_email"):
        sent = gmail.send(svc.get("gmail"), to=a["to"], cc=a.get("cc", []), subject=a["subject"], body=a["body"],
                          message_id=message_id_for(action_id), thread_id=a.get("thread_id"),
                          in_reply_to=a.get("in_reply_to"), references=a.get("references"))
        return {"message_id": sent["id"], "thread_id": sent.get("thread_id")}
    if action == "create_event":
        event = gcalendar.create_event(
            svc.get("calendar"), event_id=gcalendar.event_id_for(action_id), calendar_id=a["calendar_id"],
            title=a["title"], start=a["start"], end=a["end"], attendees=a["attendees"],
            description=a.get("description", ""), location=a.get("location", ""))
        return {"event_id": event["id"], "link": event.get("link")}
    if action == "update_event":
        changes = {k: v for k, v in a.items() if k not in ("event_id", "calendar_id")}
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


def already_done(action: str, a: dict[str, Any], action_id: str, svc: Services) -> dict[str, Any] | None:
    """The ids of what an earlier attempt did, or None when it did not happen (safe to do it now).

    Raises when it cannot tell (Google unreachable, no provider to ask): a person must look.
    """
    if action in ("send_email", "reply_email"):
        found = gmail.find_sent(svc.get("gmail"), message_id_for(action_id))
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
