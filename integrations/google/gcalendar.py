"""Google Calendar v3: calendars, events, free/busy and common free slots; idempotent event creation.

Times come in as ISO strings (a time without an offset is UTC) and go out as RFC 3339. An event
created for an action carries an id derived from the action (``event_id_for``), so creating it
twice yields one event.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import GoogleApiError
from integrations.google.api import execute, not_found

_MAX_EVENTS = 250
_FREEBUSY_BATCH = 50
_CHANGES = {"title": "summary", "start": "start", "end": "end", "attendees": "attendees",
            "description": "description", "location": "location"}
_DESCRIPTION_CHARS = 1000


def _bad(message: str) -> GoogleApiError:
    return GoogleApiError(f"Calendar: {message}", 400, "invalidArgument")


def parse_time(value: str, argument: str = "time") -> datetime:
    """An ISO date or datetime as an aware datetime; without an offset it is UTC."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _bad(f"{argument} '{value}' is not an ISO date or time (YYYY-MM-DDTHH:MM)") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def rfc3339(value: str, argument: str = "time") -> str:
    return parse_time(value, argument).isoformat(timespec="seconds")


def event_id_for(action_id: str) -> str:
    """A valid Calendar event id for an action: 32 lowercase hex digits (a subset of base32hex)."""
    return hashlib.sha256(action_id.encode("utf-8")).hexdigest()[:32]


def _when(node: dict[str, Any] | None) -> str | None:
    node = node or {}
    return node.get("dateTime") or node.get("date")


def _event(raw: dict[str, Any], description: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": raw.get("id"), "title": raw.get("summary", ""), "start": _when(raw.get("start")),
        "end": _when(raw.get("end")), "attendees": [a["email"] for a in raw.get("attendees") or [] if a.get("email")],
        "status": raw.get("status"), "link": raw.get("htmlLink"),
    }
    if raw.get("location"):
        out["location"] = raw["location"]
    if description and raw.get("description"):
        text = str(raw["description"])
        out["description"] = text[:_DESCRIPTION_CHARS] + ("…" if len(text) > _DESCRIPTION_CHARS else "")
    return out


def list_calendars(svc: Any) -> list[dict[str, Any]]:
    """The calendars the account sees: {id, name, primary, access, time_zone}."""
    listed = execute(svc.calendarList().list(), what="the calendar list")
    return [{"id": c["id"], "name": c.get("summaryOverride") or c.get("summary", c["id"]),
             "primary": bool(c.get("primary", False)), "access": c.get("accessRole"), "time_zone": c.get("timeZone")}
            for c in listed.get("items") or []]


def list_events(svc: Any, calendar_id: str = "primary", time_min: str | None = None, time_max: str | None = None,
                query: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Events (recurring ones expanded) in start order: {id, title, start, end, attendees, status, link}."""
    params: dict[str, Any] = {"calendarId": calendar_id, "singleEvents": True, "orderBy": "startTime",
                              "maxResults": max(1, min(limit, _MAX_EVENTS))}
    if time_min is not None:
        params["timeMin"] = rfc3339(time_min, "time_min")
    if time_max is not None:
        params["timeMax"] = rfc3339(time_max, "time_max")
    if query is not None and query.strip():
        params["q"] = query.strip()
    listed = execute(svc.events().list(**params), what=f"the events of calendar '{calendar_id}'")
    return [_event(e) for e in listed.get("items") or []]


def free_busy(svc: Any, emails: list[str], time_min: str, time_max: str) -> dict[str, list[list[str]]]:
    """Busy intervals per calendar (an address, or 'primary'). A calendar Google does not share
    with this account is left out: whether that person is free is unknown."""
    start, end = rfc3339(time_min, "time_min"), rfc3339(time_max, "time_max")
    ids = list(dict.fromkeys(e.strip() for e in emails if e.strip()))
    out: dict[str, list[list[str]]] = {}
    for first in range(0, len(ids), _FREEBUSY_BATCH):
        batch = ids[first:first + _FREEBUSY_BATCH]
        answer = execute(svc.freebusy().query(body={"timeMin": start, "timeMax": end,
                                                    "items": [{"id": i} for i in batch]}),
                         what=f"free/busy of {len(batch)} calendar(s)", idempotent=True)
        for cal_id, info in (answer.get("calendars") or {}).items():
            if not info.get("errors"):
                out[cal_id] = [[b["start"], b["end"]] for b in info.get("busy") or []]
    return out


def free_slots(busy: Iterable[tuple[datetime, datetime]], *, duration_minutes: int, time_min: datetime,
               time_max: datetime, day_start_hour: int = 9, day_end_hour: int = 17, tz: str = "UTC",
               limit: int = 5, granularity_minutes: int = 15) -> list[tuple[datetime, datetime, datetime]]:
    """Free slots on weekdays within working hours in ``tz``: (start, end, free_until), earliest
    first, at most one per free gap (so the choices spread out); starts on a granularity boundary."""
    if duration_minutes <= 0:
        raise _bad("duration_minutes must be positive")
    if not 0 <= day_start_hour < day_end_hour <= 24:
        raise _bad(f"working hours {day_start_hour}-{day_end_hour} are not a range within a day")
    if time_max <= time_min:
        raise _bad("the end of the search range must be after its start")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad(f"'{tz}' is not a time zone name (e.g. 'Europe/Paris')") from None
    length, step = timedelta(minutes=duration_minutes), granularity_minutes * 60
    merged = _merge(busy)
    slots: list[tuple[datetime, datetime, datetime]] = []
    day, last = time_min.astimezone(zone).date(), time_max.astimezone(zone).date()
    while day <= last and len(slots) < limit:
        if day.weekday() < 5:
            opens = max(_at(day, day_start_hour, zone), time_min)
            closes = min(_at(day, day_end_hour, zone), time_max)
            cursor = _round_up(opens, step)
            for b_start, b_end in merged:
                if b_end <= cursor:
                    continue
                if b_start >= closes:
                    break
                if b_start - cursor >= length:
                    slots.append((cursor, cursor + length, b_start))
                cursor = _round_up(max(cursor, b_end), step)
            if closes - cursor >= length:
                slots.append((cursor, cursor + length, closes))
        day += timedelta(days=1)
    return [(s.astimezone(zone), e.astimezone(zone), u.astimezone(zone)) for s, e, u in slots[:limit]]


def _at(day: date, hour: int, zone: ZoneInfo) -> datetime:
    if hour == 24:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return datetime.combine(day, time(hour), tzinfo=zone)


def _round_up(when: datetime, step_s: int) -> datetime:
    return datetime.fromtimestamp(math.ceil(when.timestamp() / step_s) * step_s, UTC)


def _merge(busy: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted((s.astimezone(UTC), e.astimezone(UTC)) for s, e in busy if e > s):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def find_slots(svc: Any, attendees: list[str], duration_minutes: int, time_min: str, time_max: str,
               day_start_hour: int = 9, day_end_hour: int = 17, tz: str = "UTC", limit: int = 5) -> list[dict[str, Any]]:
    """Slots free for the account and every attendee whose calendar Google shares: {start, end, free_until}."""
    start, end = parse_time(time_min, "time_min"), parse_time(time_max, "time_max")
    calendars = free_busy(svc, ["primary", *attendees], start.isoformat(), end.isoformat())
    busy = [(parse_time(s), parse_time(e)) for intervals in calendars.values() for s, e in intervals]
    slots = free_slots(busy, duration_minutes=duration_minutes, time_min=start, time_max=end,
                       day_start_hour=day_start_hour, day_end_hour=day_end_hour, tz=tz, limit=limit)
    return [{"start": s.isoformat(timespec="minutes"), "end": e.isoformat(timespec="minutes"),
             "free_until": u.isoformat(timespec="minutes")} for s, e, u in slots]


def _event_body(title: str, start: str, end: str, attendees: list[str], description: str, location: str) -> dict[str, Any]:
    starts, ends = parse_time(start, "start"), parse_time(end, "end")
    if ends <= starts:
        raise _bad(f"the event ends ({end}) before it starts ({start})")
    body: dict[str, Any] = {"summary": title, "start": {"dateTime": starts.isoformat(timespec="seconds")},
                            "end": {"dateTime": ends.isoformat(timespec="seconds")}}
    if attendees:
        body["attendees"] = [{"email": a} for a in attendees]
    if description:
        body["description"] = description
    if location:
        body["location"] = location
    return body


def create_event(svc: Any, *, event_id: str, calendar_id: str, title: str, start: str, end: str,
                 attendees: list[str], description: str = "", location: str = "",
                 send_updates: str = "all") -> dict[str, Any]:
    """Create the event with the client-chosen ``event_id``; if it exists already (a repeat), return
    it with ``already: True`` instead of creating a second one. Returns {id, link, start, end}."""
    body = {"id": event_id, **_event_body(title, start, end, attendees, description, location)}
    try:
        made = execute(svc.events().insert(calendarId=calendar_id, body=body, sendUpdates=send_updates),
                       what=f"event '{event_id}'", idempotent=True)
        already = False
    except GoogleApiError as exc:
        if exc.status != 409:
            raise
        made = execute(svc.events().get(calendarId=calendar_id, eventId=event_id), what=f"event '{event_id}'")
        already = True
    result = {"id": made.get("id", event_id), "link": made.get("htmlLink"), "start": _when(made.get("start")),
              "end": _when(made.get("end"))}
    if already:
        result.update(already=True, status=made.get("status"))
    return result


def get_event(svc: Any, calendar_id: str, event_id: str) -> dict[str, Any] | None:
    """The event as it is in the calendar ({id, title, start, end, attendees, status, link, and
    location, description, organizer when it has them}), or None when it does not exist or was cancelled."""
    try:
        raw = execute(svc.events().get(calendarId=calendar_id, eventId=event_id), what=f"event '{event_id}'")
    except GoogleApiError as exc:
        if not_found(exc):
            return None
        raise
    if raw.get("status") == "cancelled":
        return None
    event = _event(raw, description=True)
    organizer = (raw.get("organizer") or {}).get("email")
    if organizer:
        event["organizer"] = organizer
    return event


def update_event(svc: Any, *, calendar_id: str, event_id: str, changes: dict[str, Any],
                 send_updates: str = "all") -> dict[str, Any]:
    """Change some of title, start, end, attendees, description, location (the rest stays)."""
    unknown = sorted(set(changes) - set(_CHANGES))
    if unknown:
        raise _bad(f"cannot change {', '.join(unknown)}; changeable: {', '.join(_CHANGES)}")
    if not changes:
        raise _bad("no changes given")
    body: dict[str, Any] = {}
    for key, value in changes.items():
        if key in ("start", "end"):
            body[key] = {"dateTime": rfc3339(str(value), key)}
        elif key == "attendees":
            body[key] = [{"email": a} for a in value]
        else:
            body[_CHANGES[key]] = value
    if "start" in body and "end" in body and parse_time(body["end"]["dateTime"]) <= parse_time(body["start"]["dateTime"]):
        raise _bad("the event would end before it starts")
    patched = execute(svc.events().patch(calendarId=calendar_id, eventId=event_id, body=body, sendUpdates=send_updates),
                      what=f"event '{event_id}'")
    return _event(patched)


def delete_event(svc: Any, *, calendar_id: str, event_id: str, send_updates: str = "all") -> dict[str, Any]:
    """Delete (cancel) the event; one already gone counts as deleted, with ``already: True``."""
    try:
        execute(svc.events().delete(calendarId=calendar_id, eventId=event_id, sendUpdates=send_updates),
                what=f"event '{event_id}'")
    except GoogleApiError as exc:
        if not_found(exc):
            return {"deleted": True, "already": True}
        raise
    return {"deleted": True, "already": False}
