"""The fake Calendar: the owner's primary calendar (and any seeded by id), events, free/busy."""

from __future__ import annotations

import copy
import re
import secrets
import time
from collections.abc import Callable

from maos_testing.google._fake_wire import ApiError, ApiRequest, Json, Reply, parse_time, rfc3339

Handler = Callable[[ApiRequest], Reply]
_EVENT_ID = re.compile(r"[a-v0-9]{5,1024}\Z")
_FIXED = ("kind", "id", "created", "creator", "organizer", "iCalUID", "htmlLink")


def bounds(event: Json) -> tuple[float, float]:
    """Epoch seconds of an event's start and end (all-day dates at UTC midnight)."""
    out = []
    for key in ("start", "end"):
        when = event.get(key) or {}
        text = when.get("dateTime") or when.get("date")
        if not text:
            raise ApiError(400, f"Missing {key} time.", "required")
        out.append(parse_time(text, when.get("timeZone"), key))
    return out[0], out[1]


def _merge(target: Json, patch: Json) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _merged_busy(spans: list[tuple[float, float]], low: float, high: float) -> list[Json]:
    clipped = sorted((max(s, low), min(e, high)) for s, e in spans if e > low and s < high)
    merged: list[list[float]] = []
    for start, end in clipped:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [{"start": rfc3339(s), "end": rfc3339(e)} for s, e in merged]


class CalendarState:
    def __init__(self, account_email: str) -> None:
        self.account_email = account_email
        self.calendars: dict[str, dict[str, Json]] = {"primary": {}}  # calendar -> event id -> event
        self.busy: dict[str, list[tuple[float, float]]] = {}
        self._counter = 0

    def calendar_key(self, calendar_id: str) -> str:
        return "primary" if calendar_id in ("primary", self.account_email) else calendar_id

    def _calendar(self, calendar_id: str) -> dict[str, Json]:
        events = self.calendars.get(self.calendar_key(calendar_id))
        if events is None:
            raise ApiError(404, "Not Found", "notFound")
        return events

    def _event(self, req: ApiRequest) -> Json:
        event = self._calendar(req.path_params["calendarId"]).get(req.path_params["eventId"])
        if event is None:
            raise ApiError(404, "Not Found", "notFound")
        if event["status"] == "cancelled":
            raise ApiError(410, "Resource has been deleted", "deleted")
        return event

    # seeding and observation

    def insert(self, calendar_id: str, body: Json) -> Json:
        key = self.calendar_key(calendar_id)
        events = self.calendars.setdefault(key, {})
        event_id = body.get("id")
        if event_id is None:
            self._counter += 1
            event_id = f"ev{self._counter:06d}{secrets.token_hex(4)}"
        elif not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
            raise ApiError(400, "Invalid resource id value.", "invalid")
        if event_id in events:
            raise ApiError(409, "The requested identifier already exists.", "duplicate")
        start, end = bounds(body)
        if end < start:
            raise ApiError(400, "The specified time range is empty.", "timeRangeEmpty")
        now = rfc3339(time.time())
        owner = self.account_email if key == "primary" else key
        event: Json = {"kind": "calendar#event", "etag": f'"{time.time_ns()}"', "id": event_id,
                       "status": "confirmed", "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
                       "created": now, "updated": now, "creator": {"email": self.account_email, "self": True},
                       "organizer": {"email": owner, "self": True}, "iCalUID": f"{event_id}@google.com",
                       "sequence": 0, "reminders": {"useDefault": True}, "eventType": "default"}
        event.update({k: copy.deepcopy(v) for k, v in body.items() if k not in _FIXED})
        self._fix_attendees(event)
        events[event_id] = event
        return copy.deepcopy(event)

    def _fix_attendees(self, event: Json) -> None:
        for attendee in event.get("attendees") or []:
            attendee.setdefault("responseStatus", "needsAction")
            if attendee.get("email", "").lower() == self.account_email.lower():
                attendee.update(self=True, organizer=True, responseStatus="accepted")

    def current(self, calendar_id: str) -> list[Json]:
        events = self.calendars.get(self.calendar_key(calendar_id), {})
        live = [copy.deepcopy(e) for e in events.values() if e["status"] != "cancelled"]
        return sorted(live, key=lambda e: bounds(e)[0])

    # handlers

    def handlers(self) -> dict[str, Handler]:
        return {"calendar.calendarList.list": self.list_calendars, "calendar.events.list": self.list_events,
                "calendar.events.get": self.get_event, "calendar.events.insert": self.insert_event,
                "calendar.events.patch": self.patch_event, "calendar.events.update": self.update_event,
                "calendar.events.delete": self.delete_event, "calendar.freebusy.query": self.freebusy}

    def list_calendars(self, req: ApiRequest) -> Reply:
        items = []
        for key in self.calendars:
            entry: Json = {"kind": "calendar#calendarListEntry", "id": self.account_email if key == "primary" else key,
                           "summary": self.account_email if key == "primary" else key, "timeZone": "UTC",
                           "accessRole": "owner", "selected": True}
            if key == "primary":
                entry["primary"] = True
            items.append(entry)
        return Reply(json={"kind": "calendar#calendarList", "items": items})

    def list_events(self, req: ApiRequest) -> Reply:
        events = self._calendar(req.path_params["calendarId"])
        low = parse_time(req.arg("timeMin") or "", what="timeMin") if req.arg("timeMin") else None
        high = parse_time(req.arg("timeMax") or "", what="timeMax") if req.arg("timeMax") else None
        needle = (req.arg("q") or "").lower()
        order = req.arg("orderBy")
        if order == "startTime" and not req.flag("singleEvents"):
            raise ApiError(400, "The requested ordering is not available for the particular query.",
                           "badRequest", "orderBy")
        found = []
        for event in events.values():
            if event["status"] == "cancelled" and not req.flag("showDeleted"):
                continue
            start, end = bounds(event)
            if (low is not None and end <= low) or (high is not None and start >= high):
                continue
            people = " ".join(f"{a.get('email', '')} {a.get('displayName', '')}" for a in event.get("attendees", []))
            text = " ".join([event.get("summary", ""), event.get("description", ""), event.get("location", ""), people])
            if needle and not all(word in text.lower() for word in needle.split()):
                continue
            found.append(event)
        if order == "startTime":
            found.sort(key=lambda e: bounds(e)[0])
        elif order == "updated":
            found.sort(key=lambda e: e["updated"])
        start_at = int(req.arg("pageToken") or 0)
        size = req.int_arg("maxResults", 250, 2500)
        out: Json = {"kind": "calendar#events", "summary": self.account_email, "updated": rfc3339(time.time()),
                     "timeZone": "UTC", "accessRole": "owner", "defaultReminders": [],
                     "items": copy.deepcopy(found[start_at:start_at + size])}
        if start_at + size < len(found):
            out["nextPageToken"] = str(start_at + size)
        return Reply(json=out)

    def get_event(self, req: ApiRequest) -> Reply:
        return Reply(json=copy.deepcopy(self._event(req)))

    def insert_event(self, req: ApiRequest) -> Reply:
        return Reply(json=self.insert(req.path_params["calendarId"], req.json()))

    def _changed(self, event: Json, candidate: Json) -> Reply:
        start, end = bounds(candidate)
        if end < start:
            raise ApiError(400, "The specified time range is empty.", "timeRangeEmpty")
        candidate.update(updated=rfc3339(time.time()), sequence=int(event.get("sequence", 0)) + 1,
                         etag=f'"{time.time_ns()}"')
        self._fix_attendees(candidate)
        event.clear()
        event.update(candidate)
        return Reply(json=copy.deepcopy(event))

    def patch_event(self, req: ApiRequest) -> Reply:
        event = self._event(req)
        candidate = copy.deepcopy(event)
        _merge(candidate, {k: v for k, v in req.json().items() if k not in _FIXED})
        return self._changed(event, candidate)

    def update_event(self, req: ApiRequest) -> Reply:
        event = self._event(req)
        candidate = {k: copy.deepcopy(v) for k, v in event.items() if k in _FIXED or k in ("status", "eventType")}
        candidate.update({k: copy.deepcopy(v) for k, v in req.json().items() if k not in _FIXED})
        return self._changed(event, candidate)

    def delete_event(self, req: ApiRequest) -> Reply:
        event = self._event(req)
        event.update(status="cancelled", updated=rfc3339(time.time()))
        return Reply(204)

    def freebusy(self, req: ApiRequest) -> Reply:
        body = req.json()
        for name in ("timeMin", "timeMax"):
            if not body.get(name):
                raise ApiError(400, f"Missing {name} parameter.", "required", name)
        low, high = parse_time(body["timeMin"], what="timeMin"), parse_time(body["timeMax"], what="timeMax")
        calendars: Json = {}
        for item in body.get("items") or []:
            ident = str(item.get("id", ""))
            key = self.calendar_key(ident)
            emails = {ident.lower()} | ({self.account_email.lower()} if key == "primary" else set())
            spans = [span for email in emails for span in self.busy.get(email, [])]
            known = key in self.calendars or ident.lower() in self.busy
            for event in self.calendars.get(key, {}).values():
                if event["status"] != "cancelled" and event.get("transparency") != "transparent":
                    spans.append(bounds(event))
            if known:
                calendars[ident] = {"busy": _merged_busy(spans, low, high)}
            else:
                calendars[ident] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
        return Reply(json={"kind": "calendar#freeBusy", "timeMin": body["timeMin"], "timeMax": body["timeMax"],
                           "calendars": calendars})
