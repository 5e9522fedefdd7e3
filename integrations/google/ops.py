"""The read and draft operations sub-agents may run by name, and the OAuth scopes behind each feature.

Sending mail, creating or changing events and creating Drive files are not here: they are gated
actions, run by the Workspace actor only after approval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from core.action_schemas import GoogleFeature
from integrations.google import drive, gcalendar, gmail
from integrations.google.api import ServiceName

_SCOPE = "https://www.googleapis.com/auth/"


@dataclass(frozen=True)
class Op:
    """One operation: ``fn(service, **args)`` on the client of ``service``, allowed with ``feature``."""

    fn: Callable[..., Any]
    service: ServiceName
    feature: GoogleFeature


OPS: dict[str, Op] = {
    "gmail.search": Op(gmail.search, "gmail", "gmail_read"),
    "gmail.read_thread": Op(gmail.read_thread, "gmail", "gmail_read"),
    "gmail.list_labels": Op(gmail.list_labels, "gmail", "gmail_read"),
    "gmail.reply_headers": Op(gmail.reply_headers, "gmail", "gmail_read"),
    "gmail.apply_labels": Op(gmail.apply_labels, "gmail", "gmail_write"),
    "gmail.create_draft": Op(gmail.create_draft, "gmail", "gmail_write"),
    "calendar.list_calendars": Op(gcalendar.list_calendars, "calendar", "calendar_read"),
    "calendar.list_events": Op(gcalendar.list_events, "calendar", "calendar_read"),
    "calendar.free_busy": Op(gcalendar.free_busy, "calendar", "calendar_read"),
    "calendar.find_slots": Op(gcalendar.find_slots, "calendar", "calendar_read"),
    "calendar.get_event": Op(gcalendar.get_event, "calendar", "calendar_read"),
    "drive.list_files": Op(drive.list_files, "drive", "drive_read"),
    "drive.read": Op(drive.read, "drive", "drive_read"),
}

FEATURE_SCOPES: dict[GoogleFeature, tuple[str, ...]] = {
    "gmail_read": (_SCOPE + "gmail.readonly",),
    "gmail_write": (_SCOPE + "gmail.modify",),  # labels need modify, which also covers drafts and sending
    "calendar_read": (_SCOPE + "calendar.readonly",),
    "calendar_write": (_SCOPE + "calendar.events",),
    "drive_read": (_SCOPE + "drive.readonly",),
    "drive_write": (_SCOPE + "drive.file",),
}

FEATURE_LABELS: dict[GoogleFeature, str] = {
    "gmail_read": "Read and search your email",
    "gmail_write": "Label email, save drafts, and send email you approve",
    "calendar_read": "See your calendars, events and free/busy times",
    "calendar_write": "Create, change and delete events you approve",
    "drive_read": "Search and read your Drive files",
    "drive_write": "Create Drive documents you approve (only files it created)",
}

# Scopes that also grant another feature (per the discovery documents' method scopes):
# gmail.modify reads mail. Not implied: calendar.events reads events but cannot list calendars or
# query free/busy (calendar_read ops do both); drive.file reaches only files the app created.
_IMPLIED: dict[str, tuple[GoogleFeature, ...]] = {
    _SCOPE + "gmail.modify": ("gmail_read", "gmail_write"),
    _SCOPE + "calendar": ("calendar_read", "calendar_write"),
    _SCOPE + "drive": ("drive_read", "drive_write"),
    "https://mail.google.com/": ("gmail_read", "gmail_write"),
}


def scopes_for(features: Iterable[GoogleFeature]) -> list[str]:
    """The OAuth scopes to ask for, for these features: deduplicated, in a stable order."""
    wanted = set(features)
    return list(dict.fromkeys(s for f, scopes in FEATURE_SCOPES.items() if f in wanted for s in scopes))


def features_granted(scopes: Iterable[str]) -> set[GoogleFeature]:
    """The features a grant covers: all of a feature's scopes, or a broader scope that implies it."""
    granted = set(scopes)
    features: set[GoogleFeature] = {f for f, needed in FEATURE_SCOPES.items() if set(needed) <= granted}
    for scope in granted:
        features.update(_IMPLIED.get(scope, ()))
    return features


def feature_of(op: str) -> GoogleFeature:
    """The feature an operation needs; KeyError for an unknown operation name."""
    return OPS[op].feature
