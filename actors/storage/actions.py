"""The ``actions``, ``approval_policies`` (the install's, one per action type) and ``audit_log`` tables.

Every state change of an action is one conditional UPDATE … RETURNING, so two callers racing for
the same action (two approvals, two executors) cannot both win. Arguments stay sealed here: only the
Workspace holds the key (``actors._actions`` opens them).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from core.action_schemas import AuditEntry
from core.crypto import Sealed
from core.errors import ToolError
from core.storage_schemas import StoredAction

_COLUMNS = ("id, user_id, run_id, task_id, action, status, args_hash, ciphertext, nonce, key_id, idempotency_key, grp, "
            "replaces, created_at, expires_at, decided_by, decided_at, result, error, attempts, staged")
# Statuses of an action a person (or a policy: see decided_by) let go ahead.
_LET_THROUGH = ["approved", "executing", "done", "failed", "needs_review"]


def _action(row: tuple[Any, ...]) -> StoredAction:
    return StoredAction(**dict(zip(_COLUMNS.replace("grp", "group").split(", "), row, strict=True)))


def insert(conn: duckdb.DuckDBPyConnection, a: StoredAction) -> tuple[StoredAction, bool]:
    """A new action under its idempotency key; the existing one (and False) when that key was proposed already.
    None is proposed for a stopped (cancelled) run."""
    if a.run_id is not None and conn.execute("SELECT 1 FROM runs WHERE id = ? AND status = 'cancelled'",
                                             [a.run_id]).fetchone():
        raise ToolError(f"run '{a.run_id}' was stopped: nothing more is proposed for it")
    row = conn.execute(
        "INSERT INTO actions (id, user_id, run_id, task_id, action, status, args_hash, ciphertext, nonce, key_id, "
        "idempotency_key, grp, replaces, created_at, expires_at, decided_by, decided_at, updated_at) "
        f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
        [a.id, a.user_id, a.run_id, a.task_id, a.action, a.status, a.args_hash, a.ciphertext, a.nonce, a.key_id,
         a.idempotency_key, a.group, a.replaces, a.created_at, a.expires_at, a.decided_by, a.decided_at,
         a.created_at]).fetchone()
    if row is not None:
        return _action(row), True
    found = by_key(conn, a.idempotency_key)
    assert found is not None  # the conflict was on it
    return found, False


def by_key(conn: duckdb.DuckDBPyConnection, key: str) -> StoredAction | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM actions WHERE idempotency_key = ?", [key]).fetchone()
    return None if row is None else _action(row)


def get(conn: duckdb.DuckDBPyConnection, user_id: str, action_ids: list[str]) -> list[StoredAction]:
    """This user's actions among ``action_ids`` (others' and unknown ids are left out)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM actions WHERE user_id = ? AND id IN (SELECT unnest(?::VARCHAR[]))",
                        [user_id, action_ids]).fetchall()
    return [_action(r) for r in rows]


def owners(conn: duckdb.DuckDBPyConnection, action_ids: list[str]) -> dict[str, str]:
    """Whose each of ``action_ids`` is (unknown ids are left out): who may decide it is the caller's to check."""
    rows = conn.execute("SELECT id, user_id FROM actions WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                        [action_ids]).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def let_through(conn: duckdb.DuckDBPyConnection, user_id: str, since: float | None, limit: int) -> list[StoredAction]:
    """The user's actions a *person* let go ahead (not an "allow" policy), newest decision first; with
    ``since``, only those decided then or later."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM actions WHERE user_id = ? AND status IN (SELECT unnest(?::VARCHAR[])) "
        "AND decided_by IS NOT NULL AND decided_by <> 'policy' AND (? IS NULL OR decided_at >= ?) "
        "ORDER BY decided_at DESC LIMIT ?", [user_id, _LET_THROUGH, since, since, limit]).fetchall()
    return [_action(r) for r in rows]


def listed(conn: duckdb.DuckDBPyConnection, user_id: str, status: str | None, run_id: str | None, limit: int,
           now: float) -> list[StoredAction]:
    """Newest first; ``expired`` and ``pending`` are told apart by the deadline."""
    where: list[str] = ["user_id = ?"]
    params: list[Any] = [user_id]
    if status == "expired":
        where.append("status = 'pending' AND expires_at <= ?")
        params.append(now)
    elif status == "pending":
        where.append("status = 'pending' AND expires_at > ?")
        params.append(now)
    elif status is not None:
        where.append("status = ?")
        params.append(status)
    if run_id is not None:
        where.append("run_id = ?")
        params.append(run_id)
    rows = conn.execute(f"SELECT {_COLUMNS} FROM actions WHERE {' AND '.join(where)} ORDER BY created_at DESC, id "
                        "LIMIT ?", [*params, limit]).fetchall()
    return [_action(r) for r in rows]


def any_stored(conn: duckdb.DuckDBPyConnection) -> bool:
    return conn.execute("SELECT 1 FROM actions LIMIT 1").fetchone() is not None


def decide(conn: duckdb.DuckDBPyConnection, user_id: str, action_id: str, digest: str | None, to: str, who: str,
           error: str | None, resealed: tuple[Sealed, bytes] | None, now: float) -> StoredAction | None:
    """pending → ``to`` for this user, if not expired and (with ``digest``) for exactly these arguments;
    with ``resealed`` (the arguments sealed under the new decision, and the nonce they were opened from)
    only if the row still holds that nonce. None when it is not so."""
    reseal, params = "", []
    if resealed is not None:
        sealed, nonce = resealed
        reseal, params = ", ciphertext = ?, nonce = ?, key_id = ?", [sealed.ciphertext, sealed.nonce, sealed.key_id]
    row = conn.execute(
        f"UPDATE actions SET status = ?, decided_by = ?, decided_at = ?, error = ?, updated_at = ?{reseal} "
        "WHERE id = ? AND user_id = ? AND status = 'pending' AND expires_at > ? "
        f"AND (? IS NULL OR args_hash = ?){' AND nonce = ?' if reseal else ''} RETURNING {_COLUMNS}",
        [to, who, now, error, now, *params, action_id, user_id, now, digest, digest,
         *([resealed[1]] if resealed is not None else [])]).fetchone()
    return None if row is None else _action(row)


def claim(conn: duckdb.DuckDBPyConnection, action_id: str, now: float) -> StoredAction | None:
    """approved → executing (one caller wins); also a row left executing by a crash."""
    row = conn.execute("UPDATE actions SET status = 'executing', attempts = attempts + 1, started_at = ?, "
                       f"updated_at = ? WHERE id = ? AND status IN ('approved', 'executing') RETURNING {_COLUMNS}",
                       [now, now, action_id]).fetchone()
    return None if row is None else _action(row)


def record_staged(conn: duckdb.DuckDBPyConnection, action_id: str, staged: dict[str, Any], now: float) -> bool:
    """False when the action is no longer executing."""
    return conn.execute("UPDATE actions SET staged = ?, updated_at = ? WHERE id = ? AND status = 'executing' "
                        "RETURNING id", [json.dumps(staged), now, action_id]).fetchone() is not None


def release(conn: duckdb.DuckDBPyConnection, action_id: str, error: str, now: float) -> None:
    """executing → approved: it did not happen; the sweep retries it."""
    conn.execute("UPDATE actions SET status = 'approved', error = ?, updated_at = ? WHERE id = ? "
                 "AND status = 'executing'", [error, now, action_id])


def finish(conn: duckdb.DuckDBPyConnection, action_id: str, status: str, result: dict[str, Any] | None,
           error: str | None, now: float) -> None:
    conn.execute("UPDATE actions SET status = ?, result = ?, error = ?, finished_at = ?, updated_at = ? "
                 "WHERE id = ? AND status = 'executing'",
                 [status, json.dumps(result) if result is not None else None, error, now, now, action_id])


def due(conn: duckdb.DuckDBPyConnection, include_executing: bool) -> list[str]:
    """Actions to carry out: approved ones (and, right after a start, ones a crash left executing)."""
    states = ["approved", "executing"] if include_executing else ["approved"]
    rows = conn.execute("SELECT id FROM actions WHERE status IN (SELECT unnest(?::VARCHAR[])) ORDER BY decided_at "
                        "LIMIT 500", [states]).fetchall()
    return [str(r[0]) for r in rows]


def proposed_counts(conn: duckdb.DuckDBPyConnection, task_id: str | None, run_id: str | None) -> tuple[int, int]:
    """Actions proposed by the step and by the run (a person's edits not counted)."""
    row = conn.execute("SELECT count(*) FILTER (WHERE task_id = ?), count(*) FILTER (WHERE run_id = ?) FROM actions "
                       "WHERE (task_id = ? OR run_id = ?) AND replaces IS NULL",
                       [task_id, run_id, task_id, run_id]).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def runs_with(conn: duckdb.DuckDBPyConnection, run_ids: list[str], statuses: list[str]) -> set[str]:
    """Those of ``run_ids`` with an action in one of ``statuses``."""
    rows = conn.execute("SELECT DISTINCT run_id FROM actions WHERE run_id IN (SELECT unnest(?::VARCHAR[])) "
                        "AND status IN (SELECT unnest(?::VARCHAR[]))", [run_ids, statuses]).fetchall()
    return {r[0] for r in rows}


def every_sealed(conn: duckdb.DuckDBPyConnection) -> list[StoredAction]:
    """Every action (for key rotation)."""
    return [_action(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM actions").fetchall()]


def reseal(conn: duckdb.DuckDBPyConnection, action_id: str, sealed: Sealed, nonce: bytes) -> bool:
    """New seal, if the row still holds the one read (``nonce``): approving meanwhile re-sealed it."""
    return conn.execute("UPDATE actions SET ciphertext = ?, nonce = ?, key_id = ? WHERE id = ? AND nonce = ? "
                        "RETURNING id", [sealed.ciphertext, sealed.nonce, sealed.key_id, action_id,
                                         nonce]).fetchone() is not None


# --- policies and the audit log --------------------------------------------------------------------


def policies(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The install's saved policy per action type (one for everyone; unsaved types are 'ask')."""
    return dict(conn.execute("SELECT action, policy FROM approval_policies").fetchall())


def set_policies(conn: duckdb.DuckDBPyConnection, changes: dict[str, str], who: str, now: float) -> None:
    for action, policy in changes.items():
        conn.execute("INSERT INTO approval_policies VALUES (?, ?, ?, ?) ON CONFLICT (action) "
                     "DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at, "
                     "updated_by = excluded.updated_by", [action, policy, now, who])


def audit(conn: duckdb.DuckDBPyConnection, e: AuditEntry) -> None:
    conn.execute("INSERT INTO audit_log (id, occurred_at, actor, action, run_id, task_id, detail, user_id, subject_id, "
                 "approved_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [e.id, e.occurred_at, e.actor, e.action, e.run_id, e.task_id, json.dumps(e.detail), e.user_id,
                  e.subject_id, e.approved_by])


def audit_entries(conn: duckdb.DuckDBPyConnection, user_id: str | None, run_id: str | None, action: str | None,
                  limit: int) -> list[AuditEntry]:
    """The user's entries and the install's policy changes (they hold everyone's agents), newest
    first; ``user_id`` None: everyone's and all of the install's own (no user, such as failed logins
    of unknown names, with the name typed), an admin's view."""
    where: list[str] = []
    params: list[object] = []
    if user_id is not None:
        where.append("(user_id = ? OR (user_id IS NULL AND action LIKE 'policy.%'))")
        params.append(user_id)
    if run_id is not None:
        where.append("run_id = ?")
        params.append(run_id)
    if action is not None:
        where.append("action LIKE ?")
        params.append(f"%{action}%")
    rows = conn.execute(
        "SELECT id, occurred_at, user_id, actor, action, run_id, task_id, subject_id, approved_by, detail "
        f"FROM audit_log {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY occurred_at DESC LIMIT ?",
        [*params, limit]).fetchall()
    return [AuditEntry(id=r[0], occurred_at=r[1], user_id=r[2], actor=r[3], action=r[4], run_id=r[5], task_id=r[6],
                       subject_id=r[7], approved_by=r[8], detail=json.loads(r[9] or "{}")) for r in rows]
