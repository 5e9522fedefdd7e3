"""The ``leads`` table (the CRM of the sub-agents' tools): every function keeps to one user's rows.

Tags are stored as a JSON list and matched exactly. A lead is not added twice: the same email (any
case), or with no email the same name and company, is a duplicate. Notes accumulate as lines.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from actors.storage._search import words_score
from core.storage_schemas import Lead, NewLead, UpdateLead

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


def _lead(row: tuple[Any, ...]) -> Lead:
    lid, name, email, company, phone, tags, status, score, notes, follow_up, created = row
    return Lead(id=lid, name=name, email=email, company=company, phone=phone, tags=json.loads(tags) if tags else [],
                status=status, score=score, notes=notes, next_follow_up=follow_up, created_at=created)


def add(conn: duckdb.DuckDBPyConnection, user_id: str, leads: list[NewLead], source: str, now: float) -> list[str]:
    """Insert the leads that are not duplicates of stored ones, in their order; returns the new ids."""
    ids: list[str] = []
    for start in range(0, len(leads), _CHUNK):
        chunk, params = leads[start:start + _CHUNK], []
        for i, lead in enumerate(chunk, start):
            ts = now + i * 1e-6  # newest first stays the reverse of their order
            params += [lead.id, user_id, lead.name, lead.email, lead.company, lead.phone, json.dumps(lead.tags), "new",
                       source, ts, ts]
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        ids += [r[0] for r in conn.execute(_INSERT_NEW.format(values=values), params).fetchall()]
    return ids


def existing(conn: duckdb.DuckDBPyConnection, user_id: str, name: str, email: str | None,
             company: str | None) -> str | None:
    """The id of the stored lead this one would duplicate."""
    row = conn.execute(
        "SELECT id FROM leads WHERE user_id = ? AND ((? IS NOT NULL AND lower(email) = lower(?)) OR "
        "(? IS NULL AND email IS NULL AND lower(name) = lower(?) AND coalesce(lower(company), '') = lower(?)))",
        [user_id, email, email, email, name, company or ""]).fetchone()
    return None if row is None else str(row[0])


def find(conn: duckdb.DuckDBPyConnection, user_id: str, tag: str | None, text: str | None, status: str | None,
         limit: int) -> list[Lead]:
    """Newest first; the filters combine."""
    where, params = ["user_id = ?"], [user_id]
    if tag is not None:
        where.append("list_contains(from_json(tags, '[\"VARCHAR\"]'), ?)")
        params.append(tag)
    if text is not None:
        where.append("contains(lower(concat_ws(' ', name, email, company, notes)), ?)")
        params.append(text)
    if status is not None:
        where.append("status = ?")
        params.append(status)
    rows = conn.execute(f"SELECT {_COLUMNS} FROM leads WHERE {' AND '.join(where)} ORDER BY created_at DESC, id LIMIT ?",
                        [*params, limit]).fetchall()
    return [_lead(r) for r in rows]


def search(conn: duckdb.DuckDBPyConnection, user_id: str, terms: list[str], limit: int) -> list[Lead]:
    """Leads matching most of ``terms`` (in name, email, company, notes or tags) first."""
    hits = words_score("$3", "CASE WHEN contains(lt, t) THEN 1 ELSE 0 END")
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM (SELECT *, {hits} AS hits FROM (SELECT *, "
        "lower(concat_ws(' ', name, email, company, notes, tags)) AS lt FROM leads WHERE user_id = $1)) "
        "WHERE hits > 0 ORDER BY hits DESC, created_at DESC, id LIMIT $2",
        [user_id, limit, terms]).fetchall()
    return [_lead(r) for r in rows]


def update(conn: duckdb.DuckDBPyConnection, user_id: str, change: UpdateLead, now: float) -> Lead | None:
    """Apply ``change`` (the note appended as a line); None when the user has no such lead."""
    sets: list[str] = []
    params: list[Any] = []
    for column, value in (("status", change.status), ("score", change.score), ("next_follow_up", change.next_follow_up),
                          ("tags", None if change.tags is None else json.dumps(change.tags))):
        if value is not None:
            sets.append(f"{column} = ?")
            params.append(value)
    if change.note is not None:
        sets.append(_APPEND_NOTE)
        params += [change.note] * 2
    if not sets:
        return None
    row = conn.execute(f"UPDATE leads SET {', '.join(sets)}, updated_at = ? WHERE user_id = ? AND id = ? "
                       f"RETURNING {_COLUMNS}", [*params, now, user_id, change.lead_id]).fetchone()
    return None if row is None else _lead(row)
