"""CRM tools over the user's leads (``actors.storage.leads``; the step's store holds only their rows).

Tags are stored as a JSON list of trimmed lower-case strings and matched exactly. A lead is not
added twice: the same email (any case), or with no email the same name and company, is a duplicate.
Notes accumulate: every update, score and follow-up appends a dated line.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field

from actors.agents.context import ToolContext
from actors.agents.tools._common import is_email, iso, new_id, normalize_tags, parse_when
from core.errors import ToolError
from core.storage_schemas import Lead, LeadStatus, NewLead

CSV_COLUMNS = ("name", "email", "company", "phone", "tags")


def _lead(lead: Lead) -> dict[str, Any]:
    notes = lead.notes
    out = {
        "id": lead.id, "name": lead.name, "email": lead.email, "company": lead.company, "phone": lead.phone,
        "tags": lead.tags, "status": lead.status, "score": lead.score,
        "notes": notes if notes is None or len(notes) <= 300 else notes[-300:],
        "next_follow_up": iso(lead.next_follow_up), "added": iso(lead.created_at),
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


def _note_line(text: str) -> str:
    return f"{datetime.now(UTC).date().isoformat()}: {text.strip()}"


async def _update(ctx: ToolContext, lead_id: str, **change: Any) -> dict[str, Any]:
    lead = await ctx.store.update_lead(lead_id.strip(), **change)
    if lead is None:
        raise ToolError(f"no lead with id '{lead_id}' (find_leads shows lead ids)")
    return _lead(lead)


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
    lead = NewLead(id=new_id(), **_validated(name, email, company, phone, tags if tags is not None else []))
    if await ctx.store.add_leads([lead], source="agent"):
        return f"Added lead '{lead.name}' (id {lead.id})."
    existing = await ctx.store.existing_lead(lead.name, lead.email, lead.company) or "unknown"
    return f"Lead '{lead.name}' already exists (id {existing}); nothing added. Use update_lead to change it."


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
    leads: list[NewLead] = []
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
        new = NewLead(id=new_id(), **lead)
        lines[new.id] = line
        leads.append(new)
    added = set(await ctx.store.add_leads(leads, source="csv")) if leads else set()
    skipped += [{"line": lines[lead.id], "reason": "already in the CRM"} for lead in leads if lead.id not in added]
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
    rows = await ctx.store.find_leads(tag=tag.strip().lower() if tag is not None and tag.strip() else None,
                                      text=text.strip().lower() if text is not None and text.strip() else None,
                                      status=status, limit=limit + 1)
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
    note = _note_line(notes) if notes is not None and notes.strip() else None
    if status is None and note is None and tags is None:
        raise ToolError("nothing to update: give status, notes or tags")
    return await _update(ctx, lead_id, status=status, note=note, tags=None if tags is None else normalize_tags(tags))


async def score_lead(
    ctx: ToolContext, lead_id: str, score: Annotated[int, Field(ge=0, le=100)], reason: str
) -> dict[str, Any]:
    """Score a lead from 0 (cold) to 100 (ready to buy); the reason is kept in its notes.

    Args:
        lead_id: Id of the lead (from find_leads).
        score: Score from 0 to 100.
        reason: One sentence on why.
    """
    return await _update(ctx, lead_id, score=score, note=_note_line(f"scored {score}: {reason}"))


async def schedule_follow_up(ctx: ToolContext, lead_id: str, when: str, note: str) -> dict[str, Any]:
    """Set when to follow up with a lead next; the note says what the follow-up is about.

    Args:
        lead_id: Id of the lead (from find_leads).
        when: ISO date or datetime: YYYY-MM-DD or YYYY-MM-DDTHH:MM; without an offset it is UTC.
        note: What to follow up about.
    """
    ts = parse_when(when, "when")
    return await _update(ctx, lead_id, next_follow_up=ts, note=_note_line(f"follow up {iso(ts)}: {note}"))


TOOLS = (add_lead, import_leads_csv, find_leads, update_lead, score_lead, schedule_follow_up)
