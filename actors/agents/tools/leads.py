"""CRM tools over the ``leads`` table, scoped to the user the step runs for.

Tags are stored as a JSON list of trimmed lower-case strings and matched exactly. A lead is not
added twice: the same email (any case), or with no email the same name and company, is a duplicate.
Notes accumulate: every update, score and follow-up appends a dated line.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from actors.agents.context import ToolContext
from actors.agents.tools._common import is_email, iso, new_id, normalize_tags, now, parse_when
from core.errors import ToolError

LeadStatus = Literal["new", "contacted", "qualified", "won", "lost"]
CSV_COLUMNS = ("name", "email", "company", "phone", "tags")
_COLUMNS = "id, name, email, company, phone, tags, status, score, notes, next_follow_up, created_at"
_INSERT_NEW = """
INSERT INTO leads (id, user_id, name, email, company, phone, tags, status, source, created_at, updated_at)
SELECT v.* FROM (VALUES {values})
    v(id, user_id, name, email, company, phone, tags, status, source, created_at, updated_at)
WHERE NOT EXISTS (
    SELECT 1 FROM leads l WHERE l.user_id = v.user_id AND (
        (v.email IS NOT NULL AND lower(l.email) = lower(v.email))
        OR (v.email IS NULL AND l.email IS NULL AND lower(l.name) = lower(v.name)
            AND coalesce(lower(l.company), '') = coalesce(lower(v.company), ''))))
RETURNING id
"""
_APPEND_NOTE = "notes = CASE WHEN coalesce(notes, '') = '' THEN ? ELSE notes || chr(10) || ? END"
_CHUNK = 200


def _lead(row: tuple[Any, ...]) -> dict[str, Any]:
    lid, name, email, company, phone, tags, status, score, notes, follow_up, created = row
    out = {
        "id": lid, "name": name, "email": email, "company": company, "phone": phone,
        "tags": json.loads(tags) if tags else [], "status": status, "score": score,
        "notes": notes if notes is None or len(notes) <= 300 else notes[-300:],
        "next_follow_up": iso(follow_up), "added": iso(created),
    }
    return {k: v for k, v in out.items() if v not in (None, "", [])}


def _clean(value: str | None) -> str | None:
    """Trimmed text; empty becomes None (models often send "" for 'not given')."""
    if value is None or not value.strip():
        return None
    return value.strip()


def _validated(name: str, email: str | None, company: str | None, phone: str | None, tags: list[str]) -> dict[str, Any]:
    """A lead row's values; a ToolError says what is wrong with them."""
    name_, email_, company_, phone_ = _clean(name), _clean(email), _clean(company), _clean(phone)
    if name_ is None:
        raise ToolError("name is empty")
    if email_ is not None and not is_email(email_):
        raise ToolError(f"email '{email_}' is not an email address")
    if phone_ is not None and sum(c.isdigit() for c in phone_) < 7:
        raise ToolError(f"phone '{phone_}' has fewer than 7 digits")
    return {"name": name_, "email": email_, "company": company_, "phone": phone_, "tags": normalize_tags(tags)}


def _key(lead: dict[str, Any]) -> tuple[str, ...]:
    if lead["email"]:
        return (lead["email"].lower(),)
    return ("", lead["name"].lower(), (lead["company"] or "").lower())


async def _insert_new(ctx: ToolContext, leads: list[dict[str, Any]], source: str) -> list[str]:
    """Insert the leads that are not duplicates of stored ones; returns the new ids."""
    ids: list[str] = []
    for start in range(0, len(leads), _CHUNK):
        chunk, params = leads[start:start + _CHUNK], []
        for lead in chunk:
            ts = now()
            params += [lead["id"], ctx.user_id, lead["name"], lead["email"], lead["company"], lead["phone"],
                       json.dumps(lead["tags"]), "new", source, ts, ts]
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        ids += [r[0] for r in await ctx.store.write(_INSERT_NEW.format(values=values), params)]
    return ids


def _note_line(text: str) -> str:
    return f"{datetime.now(UTC).date().isoformat()}: {text.strip()}"


async def _update(ctx: ToolContext, lead_id: str, sets: list[str], params: list[Any]) -> dict[str, Any]:
    rows = await ctx.store.write(
        f"UPDATE leads SET {', '.join(sets)}, updated_at = ? WHERE user_id = ? AND id = ? RETURNING {_COLUMNS}",
        [*params, now(), ctx.user_id, lead_id.strip()],
    )
    if not rows:
        raise ToolError(f"no lead with id '{lead_id}' (find_leads shows lead ids)")
    return _lead(rows[0])


async def add_lead(
    ctx: ToolContext,
    name: str,
    email: str | None = None,
    company: str | None = None,
    phone: str | None = None,
    tags: list[str] | None = None,
) -> str:
    """Add one lead to the CRM. A lead already there (same email, or same name and company) is not added again.

    Args:
        name: Full name of the person.
        email: Email address.
        company: Company or organisation.
        phone: Phone number, digits with optional '+', spaces or dashes.
        tags: Labels such as 'webinar' or 'vip'.
    """
    lead = _validated(name, email, company, phone, tags if tags is not None else [])
    lead["id"] = new_id()
    if await _insert_new(ctx, [lead], source="agent"):
        return f"Added lead '{lead['name']}' (id {lead['id']})."
    rows = await ctx.store.read(
        "SELECT id FROM leads WHERE user_id = ? AND ((? IS NOT NULL AND lower(email) = lower(?)) OR "
        "(? IS NULL AND email IS NULL AND lower(name) = lower(?) AND coalesce(lower(company), '') = lower(?)))",
        [ctx.user_id, lead["email"], lead["email"], lead["email"], lead["name"], lead["company"] or ""],
    )
    existing = rows[0][0] if rows else "unknown"
    return f"Lead '{lead['name']}' already exists (id {existing}); nothing added. Use update_lead to change it."


async def import_leads_csv(ctx: ToolContext, csv_text: str) -> dict[str, Any]:
    """Import leads from CSV text; bad rows and duplicates are skipped, each with a reason.

    Args:
        csv_text: CSV text whose first row is the header name,email,company,phone,tags. Only name
            is required; separate several tags with ';'.
    """
    reader = csv.reader(io.StringIO(csv_text.strip()))
    header = [h.strip().lower() for h in next(reader, [])]
    if "name" not in header:
        raise ToolError(f"the first row must be a header with a 'name' column (columns: {','.join(CSV_COLUMNS)})")
    skipped: list[dict[str, Any]] = []
    seen: dict[tuple[str, ...], int] = {}
    leads: list[dict[str, Any]] = []
    lines: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            skipped.append({"line": line, "reason": f"{len(row)} fields, the header has {len(header)}"})
            continue
        cells = dict(zip(header, row, strict=True))
        try:
            lead = _validated(cells["name"], cells.get("email"), cells.get("company"), cells.get("phone"),
                              cells.get("tags", "").split(";"))
        except ToolError as exc:
            skipped.append({"line": line, "reason": str(exc)})
            continue
        if _key(lead) in seen:
            skipped.append({"line": line, "reason": f"duplicate of line {seen[_key(lead)]}"})
            continue
        seen[_key(lead)] = line
        lead["id"] = new_id()
        lines[lead["id"]] = line
        leads.append(lead)
    added = set(await _insert_new(ctx, leads, source="csv"))
    skipped += [{"line": lines[lead["id"]], "reason": "already in the CRM"} for lead in leads if lead["id"] not in added]
    skipped.sort(key=lambda s: s["line"])
    result: dict[str, Any] = {"imported": len(added), "skipped_count": len(skipped), "skipped": skipped[:20]}
    ignored = [h for h in header if h not in CSV_COLUMNS]
    if ignored:
        result["ignored_columns"] = ignored
    return result


async def find_leads(
    ctx: ToolContext,
    tag: str | None = None,
    text: str | None = None,
    status: LeadStatus | None = None,
    limit: Annotated[int, Field(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Find leads in the CRM, newest first. Filters combine; with none, lists all leads.

    Args:
        tag: Only leads with exactly this tag.
        text: Words found in the name, email, company or notes.
        status: Only leads with this status.
        limit: Most leads to return.
    """
    where, params = ["user_id = ?"], [ctx.user_id]
    if tag is not None and tag.strip():
        where.append("list_contains(from_json(tags, '[\"VARCHAR\"]'), ?)")
        params.append(tag.strip().lower())
    if text is not None and text.strip():
        where.append("contains(lower(concat_ws(' ', name, email, company, notes)), ?)")
        params.append(text.strip().lower())
    if status is not None:
        where.append("status = ?")
        params.append(status)
    rows = await ctx.store.read(
        f"SELECT {_COLUMNS} FROM leads WHERE {' AND '.join(where)} ORDER BY created_at DESC, id LIMIT ?",
        [*params, limit + 1],
    )
    result: dict[str, Any] = {"count": min(len(rows), limit), "leads": [_lead(r) for r in rows[:limit]]}
    if len(rows) > limit:
        result["note"] = f"more than {limit} leads match; narrow the filters or raise limit"
    elif not rows:
        result["note"] = "no leads match these filters"
    return result


async def update_lead(
    ctx: ToolContext,
    lead_id: str,
    status: LeadStatus | None = None,
    notes: str | None = None,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """Change a lead's status, add to its notes, or replace its tags.

    Args:
        lead_id: Id of the lead (from find_leads).
        status: New status.
        notes: Text appended to the lead's notes as a dated line.
        tags: The lead's new full list of tags.
    """
    sets: list[str] = []
    params: list[Any] = []
    if status is not None:
        sets.append("status = ?")
        params.append(status)
    if notes is not None and notes.strip():
        sets.append(_APPEND_NOTE)
        params += [_note_line(notes)] * 2
    if tags is not None:
        sets.append("tags = ?")
        params.append(json.dumps(normalize_tags(tags)))
    if not sets:
        raise ToolError("nothing to update: give status, notes or tags")
    return await _update(ctx, lead_id, sets, params)


async def score_lead(
    ctx: ToolContext, lead_id: str, score: Annotated[int, Field(ge=0, le=100)], reason: str
) -> dict[str, Any]:
    """Score a lead from 0 (cold) to 100 (ready to buy); the reason is kept in its notes.

    Args:
        lead_id: Id of the lead (from find_leads).
        score: Score from 0 to 100.
        reason: One sentence on why.
    """
    line = _note_line(f"scored {score}: {reason}")
    return await _update(ctx, lead_id, ["score = ?", _APPEND_NOTE], [score, line, line])


async def schedule_follow_up(ctx: ToolContext, lead_id: str, when: str, note: str) -> dict[str, Any]:
    """Set when to follow up with a lead next; the note says what the follow-up is about.

    Args:
        lead_id: Id of the lead (from find_leads).
        when: ISO date or datetime: YYYY-MM-DD or YYYY-MM-DDTHH:MM; without an offset it is UTC.
        note: What to follow up about.
    """
    ts = parse_when(when, "when")
    line = _note_line(f"follow up {iso(ts)}: {note}")
    return await _update(ctx, lead_id, ["next_follow_up = ?", _APPEND_NOTE], [ts, line, line])


TOOLS = (add_lead, import_leads_csv, find_leads, update_lead, score_lead, schedule_follow_up)
