"""What the arguments of every gated action share: a strict model (unknown keys refused, text
stripped), mail addresses and ISO times checked. And the arguments of the action types that no
built-in provider performs yet (texting, calling): they can be proposed and decided before a
provider exists, and fail as "no provider registered" when carried out.

A provider's own argument models (``integrations.google.actions``) derive from ``ActionArgs``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


class ActionArgs(BaseModel):
    """The arguments of one action type, as a person approves them."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    def checked(self) -> dict[str, Any]:
        """The arguments as stored, hashed and carried out (JSON types). Override to drop keys."""
        return self.model_dump(mode="json")


def email_list(value: Any) -> list[str]:
    """Addresses from a list or a comma/semicolon-separated string; ValueError names bad ones."""
    items = value.replace(";", ",").split(",") if isinstance(value, str) else list(value or [])
    out = [str(v).strip() for v in items if str(v).strip()]
    bad = [v for v in out if not _EMAIL.match(v)]
    if bad:
        raise ValueError(f"not an email address: {', '.join(bad[:3])}")
    return out


def iso_time(value: Any) -> str:
    """An ISO datetime with its offset (UTC when it has none); ValueError otherwise."""
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'{text}' is not an ISO datetime (YYYY-MM-DDTHH:MM, UTC when no offset)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


class SendText(ActionArgs):
    to: str = Field(min_length=7, max_length=20)
    body: str = Field(min_length=1, max_length=1600)


class PlaceCall(ActionArgs):
    to: str = Field(min_length=7, max_length=20)
    script: str = Field(min_length=1)


def text_summary(a: dict[str, Any]) -> str:
    return f"Text {a['to']}: {a['body'][:60]}"


def call_summary(a: dict[str, Any]) -> str:
    return f"Call {a['to']}"
