"""The gated actions Google carries out: each one's arguments, checked, and the line a person reads
before approving it. (Reads and drafts for sub-agents are in ``ops``; how each action is done and
checked after a crash is in ``execution``.)"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.action_args import ActionArgs, email_list, iso_time
from core.recipients import added_attendees
from integrations.registry import ActionSpec


class SendEmail(ActionArgs):
    to: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    subject: str = Field(min_length=1, max_length=998)
    body: str = Field(min_length=1)

    @field_validator("to", "cc", mode="before")
    @classmethod
    def check_addresses(cls, v: Any) -> list[str]:
        return email_list(v)


class ReplyEmail(ActionArgs):
    """A reply: the model gives the thread and the body; the rest is read from the thread (see
    ``execution.ground``), whatever the model passed for it."""

    thread_id: str = Field(min_length=1)
    body: str = Field(min_length=1)
    to: list[str] = Field(default_factory=list, description="Filled from the thread when proposed.")
    subject: str = ""
    in_reply_to: str | None = None
    references: str | None = None
    sender: str | None = Field(None, description="The From address of the message replied to.")
    reply_to: list[str] = Field(default_factory=list, description="Its Reply-To addresses, if it has any.")
    to_source: Literal["reply_to", "from", "to", "person"] | None = Field(
        None, description="Where ``to`` came from: the message's Reply-To, its From, the To of the user's own "
                          "message, or a person's edit.")

    @field_validator("to", "reply_to", mode="before")
    @classmethod
    def check_addresses(cls, v: Any) -> list[str]:
        return email_list(v)


class CreateEvent(ActionArgs):
    title: str = Field(min_length=1)
    start: str
    end: str
    attendees: list[str] = Field(default_factory=list)
    description: str = ""
    location: str = ""
    calendar_id: str = "primary"

    @field_validator("attendees", mode="before")
    @classmethod
    def check_addresses(cls, v: Any) -> list[str]:
        return email_list(v)

    @field_validator("start", "end", mode="before")
    @classmethod
    def check_times(cls, v: Any) -> str:
        return iso_time(v)

    @model_validator(mode="after")
    def check_order(self) -> CreateEvent:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class UpdateEvent(ActionArgs):
    """The fields to change; ``before`` is the event as it is (title, time, attendees, and the current
    value of each changed field), read from Calendar when proposed (never from the model)."""

    event_id: str = Field(min_length=1)
    calendar_id: str = "primary"
    title: str | None = None
    start: str | None = None
    end: str | None = None
    attendees: list[str] | None = None
    description: str | None = None
    location: str | None = None
    before: dict[str, Any] | None = None

    @field_validator("attendees", mode="before")
    @classmethod
    def check_addresses(cls, v: Any) -> Any:
        return None if v is None else email_list(v)

    @field_validator("start", "end", mode="before")
    @classmethod
    def check_times(cls, v: Any) -> Any:
        return None if v is None else iso_time(v)

    def checked(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)  # a field left out is not changed


class DeleteEvent(ActionArgs):
    """The event to delete; its title, time and attendees are read from Calendar when proposed (the
    model's ``title`` is replaced), so a person sees the event as it is."""

    event_id: str = Field(min_length=1)
    calendar_id: str = "primary"
    title: str = ""
    start: str | None = None
    end: str | None = None
    attendees: list[str] = Field(default_factory=list)
    organizer: str | None = None


class CreateDriveFile(ActionArgs):
    title: str = Field(min_length=1, max_length=300)
    content: str = Field(min_length=1)
    folder_id: str | None = None


def _send(a: dict[str, Any]) -> str:
    return f"Send email to {', '.join(a['to'])}: {a['subject']}"


def _reply(a: dict[str, Any]) -> str:
    via = " (its Reply-To)" if a.get("to_source") == "reply_to" else ""
    return f"Reply to {', '.join(a.get('to') or ['the thread'])}{via}: {a.get('subject') or a['thread_id']}"


def _create(a: dict[str, Any]) -> str:
    who = f" with {', '.join(a['attendees'])}" if a.get("attendees") else ""
    return f"Create event '{a['title']}' {a['start']} → {a['end']}{who}"


def _update(a: dict[str, Any]) -> str:
    changed = ", ".join(k for k in a if k not in ("event_id", "calendar_id", "before"))
    title = (a.get("before") or {}).get("title")
    added = added_attendees(a)
    adds = f"; adds {', '.join(added)}" if added else ""
    return f"Change event {repr(title) if title else a['event_id']}: {changed or 'nothing'}{adds}"


def _delete(a: dict[str, Any]) -> str:
    when = f" ({a['start']})" if a.get("start") else ""
    return f"Delete event {repr(a['title']) if a.get('title') else a['event_id']}{when}"


def _drive(a: dict[str, Any]) -> str:
    return f"Create Google Doc '{a['title']}' ({len(a['content'])} characters)"


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("send_email", SendEmail, _send),
    ActionSpec("reply_email", ReplyEmail, _reply),
    ActionSpec("create_event", CreateEvent, _create),
    ActionSpec("update_event", UpdateEvent, _update),
    ActionSpec("delete_event", DeleteEvent, _delete),
    ActionSpec("create_drive_file", CreateDriveFile, _drive),
)
