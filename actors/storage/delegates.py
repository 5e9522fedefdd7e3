"""The ``approval_delegates`` table (migration 10): whom each person lets decide their pending actions.

Only the owner approves their own agents' actions, unless they named a delegate here. An admin is
not a delegate unless named. Plain ``(conn, …, now)`` functions; the Store runs the write in its
group commit, so a removal holds for the very next decision.
"""

from __future__ import annotations

import duckdb

from core.action_schemas import Person
from core.errors import Conflict, NotFound


def named_by(conn: duckdb.DuckDBPyConnection, owner_id: str) -> list[Person]:
    """The delegates ``owner_id`` named, by name."""
    rows = conn.execute("SELECT u.id, u.name FROM approval_delegates d JOIN users u ON u.id = d.delegate_id "
                        "WHERE d.owner_id = ? ORDER BY lower(u.name), u.id", [owner_id]).fetchall()
    return [Person(id=r[0], name=r[1] or "") for r in rows]


def naming(conn: duckdb.DuckDBPyConnection, delegate_id: str) -> list[Person]:
    """Those who named ``delegate_id`` their delegate (whose pending actions they may decide); an owner
    with no account row (the install's user before accounts) by id."""
    rows = conn.execute("SELECT d.owner_id, coalesce(u.name, d.owner_id) FROM approval_delegates d "
                        "LEFT JOIN users u ON u.id = d.owner_id WHERE d.delegate_id = ? "
                        "ORDER BY lower(coalesce(u.name, d.owner_id)), d.owner_id", [delegate_id]).fetchall()
    return [Person(id=r[0], name=r[1] or "") for r in rows]


def _resolve(conn: duckdb.DuckDBPyConnection, owner_id: str, who: str) -> str:
    """The id of the enabled user ``who`` names (an id, or a login name in any case)."""
    row = conn.execute("SELECT id, disabled FROM users WHERE id = ? OR lower(name) = lower(?) "
                       "ORDER BY id = ? DESC LIMIT 1", [who, who, who]).fetchone()
    if row is None or row[1]:
        raise NotFound(f"no enabled user '{who}' to name as a delegate")
    if row[0] == owner_id:
        raise Conflict("you decide your own actions already: name someone else as your delegate")
    return str(row[0])


def set_delegates(conn: duckdb.DuckDBPyConnection, owner_id: str, names: list[str],
                  now: float) -> tuple[list[Person], list[Person]]:
    """Replace ``owner_id``'s delegates with the users ``names`` names (ids or login names; only
    existing, enabled users; never the owner: NotFound / Conflict, and nothing changes).
    Returns (added, removed)."""
    wanted = dict.fromkeys(_resolve(conn, owner_id, n) for n in names)
    before = {p.id: p for p in named_by(conn, owner_id)}
    removed = [p for i, p in before.items() if i not in wanted]
    added = [i for i in wanted if i not in before]
    if removed:
        conn.execute("DELETE FROM approval_delegates WHERE owner_id = ? AND delegate_id IN "
                     "(SELECT unnest(?::VARCHAR[]))", [owner_id, [p.id for p in removed]])
    for delegate_id in added:
        conn.execute("INSERT INTO approval_delegates VALUES (?, ?, ?)", [owner_id, delegate_id, now])
    return [p for p in named_by(conn, owner_id) if p.id in added], removed
