"""The arguments of each gated action type, checked; their hash (what an approval binds to); the
one-line summary a person reads; and scrubbing of addresses out of stored error text."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.action_schemas import ActionType
from core.errors import ToolError
from core.recipients import added_attendees

_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
_ANY_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _emails(value: Any) -> list[str]:
    items = value.replace(";", ",").split(",") if isinstance(value, str) else list(value or [])
    out = [str(v).strip() for v in items if str(v).strip()]
    bad = [v for v in out if not _EMAIL.match(v)]
    if bad:
        raise ValueError(f"not an email address: {', '.join(bad[:3])}")
    return out


def _when(value: Any) -> str:
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'{text}' is not an ISO datetime (YYYY-MM-DDTHH:MM, UTC when no offset)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SendEmail(_Args):
    to: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    subject: str = Field(min_length=1, max_length=998)
    body: str = Field(min_length=1)

    @field_validator("to", "cc", mode="before")
    @classmethod
    def check_addresses(cls, v: Any) -> list[str]:
        return _emails(v)


class ReplyEmail(_Args):
    """A reply: the model gives the thread and the body; the rest is read from the thread (see
    ``actors._grounding``), whatever the model passed for it."""

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
        return _emails(v)


class CreateEvent(_Args):
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
        return _emails(v)

    @field_validator("start", "end", mode="before")
    @classmethod
    def check_times(cls, v: Any) -> str:
        return _when(v)


class UpdateEvent(_Args):
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
        return None if v is None else _emails(v)

    @field_validator("start", "end", mode="before")
    @classmethod
    def check_times(cls, v: Any) -> Any:
        return None if v is None else _when(v)


class DeleteEvent(_Args):
    """The event to delete; its title, time and attendees are read from Calendar when proposed (the
    model's ``title`` is replaced), so a person sees the event as it is."""

    event_id: str = Field(min_length=1)
    calendar_id: str = "primary"
    title: str = ""
    start: str | None = None
    end: str | None = None
    attendees: list[str] = Field(default_factory=list)
    organizer: str | None = None


class CreateDriveFile(_Args):
    title: str = Field(min_length=1, max_length=300)
    content: str = Field(min_length=1)
    folder_id: str | None = None


class SendText(_Args):
    to: str = Field(min_length=7, max_length=20)
    body: str = Field(min_length=1, max_length=1600)


class PlaceCall(_Args):
    to: str = Field(min_length=7, max_length=20)
    script: str = Field(min_length=1)


ARGUMENTS: dict[str, type[_Args]] = {
    "send_email": SendEmail, "reply_email": ReplyEmail, "create_event": CreateEvent,
    "update_event": UpdateEvent, "delete_event": DeleteEvent, "create_drive_file": CreateDriveFile,
    "send_text": SendText, "place_call": PlaceCall,
}
PROVIDER: dict[str, str] = {
    "send_email": "google", "reply_email": "google", "create_event": "google", "update_event": "google",
    "delete_event": "google", "create_drive_file": "google", "send_text": "texting", "place_call": "calling",
}


def check_arguments(action: ActionType, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments normalised (addresses listed, times in ISO with offset); ToolError names what is wrong."""
    model = ARGUMENTS[action]
    try:
        parsed = model.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise ToolError(f"{action}: {problems}") from None
    if isinstance(parsed, CreateEvent) and parsed.end <= parsed.start:
        raise ToolError(f"{action}: end must be after start")
    return parsed.model_dump(mode="json", exclude_none=isinstance(parsed, UpdateEvent))


def args_hash(action: str, arguments: dict[str, Any]) -> str:
    canonical = json.dumps({"action": action, "arguments": arguments}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def summary(action: str, a: dict[str, Any]) -> str:
    """One line a person reads before approving (built on read: it names people, so it is not stored)."""
    if action == "send_email":
        return f"Send email to {', '.join(a['to'])}: {a['subject']}"
    if action == "reply_email":
        via = " (its Reply-To)" if a.get("to_source") == "reply_to" else ""
        return f"Reply to {', '.join(a.get('to') or ['the thread'])}{via}: {a.get('subject') or a['thread_id']}"
    if action == "create_event":
        who = f" with {', '.join(a['attendees'])}" if a.get("attendees") else ""
        return f"Create event '{a['title']}' {a['start']} → {a['end']}{who}"
    if action == "update_event":
        changed = ", ".join(k for k in a if k not in ("event_id", "calendar_id", "before"))
        title = (a.get("before") or {}).get("title")
        added = added_attendees(a)
        adds = f"; adds {', '.join(added)}" if added else ""
        return f"Change event {repr(title) if title else a['event_id']}: {changed or 'nothing'}{adds}"
    if action == "delete_event":
        when = f" ({a['start']})" if a.get("start") else ""
        return f"Delete event {repr(a['title']) if a.get('title') else a['event_id']}{when}"
    if action == "create_drive_file":
        return f"Create Google Doc '{a['title']}' ({len(a['content'])} characters)"
    if action == "send_text":
        return f"Text {a['to']}: {a['body'][:60]}"
    if action == "place_call":
        return f"Call {a['to']}"
    return action


def scrub(text: str) -> str:
    """Error text as it may be stored and logged: addresses replaced, length capped."""
    return _ANY_EMAIL.sub("<address>", text)[:500]
