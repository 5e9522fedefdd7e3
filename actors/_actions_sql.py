"""The ``actions``, ``approval_policies`` and ``audit_log`` tables, through the Store handle.

Every state change is one conditional UPDATE … RETURNING, so two callers racing for the same
action (two approvals, two executors) cannot both win. Arguments are sealed (AES-GCM, bound to
the row, user, type, hash and decision: ``actors._action_seal``; approving re-seals them); the
summary a person reads is built from them on read and never stored.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

from actors._action_args import args_hash, summary
from actors._action_seal import open_args, seal_args
from actors.handles import Handle
from core.action_schemas import ACTION_TYPES, ActionView, AuditEntry, Policy
from core.crypto import LET_THROUGH, DecryptError, Sealed, Sealer
from core.errors import ApprovalRefused, NotFound
from core.recipients import key, recipients_of

_COLUMNS = ("id, user_id, run_id, task_id, action, status, args_hash, ciphertext, nonce, key_id, grp, replaces, "
            "created_at, expires_at, decided_by, decided_at, result, error")


@dataclass(frozen=True)
class Inserted:
    view: ActionView
    created: bool


def _view(row: tuple[Any, ...], sealer: Sealer) -> ActionView:
    (aid, user_id, run_id, task_id, action, status, digest, ct, nonce, kid, grp, replaces, created, expires,
     decided_by, decided_at, result, error) = row
    args, _ = open_args(sealer, action_id=aid, user_id=user_id, action=action, digest=digest, status=status,
                        sealed=Sealed(ct, nonce, kid))
    if args_hash(action, args) != digest:  # cannot happen unless the row was tampered with
        raise ApprovalRefused(f"action {aid}: its stored arguments do not match their hash", "tampered")
    if status == "pending" and expires <= time.time():
        status = "expired"
    return ActionView(id=aid, action=action, status=status, summary=summary(action, args), arguments=args,
                      args_hash=digest, run_id=run_id, task_id=task_id, user_id=user_id, group=grp,
                      created_at=created, expires_at=expires, decided_by=decided_by, decided_at=decided_at,
                      result=json.loads(result) if result else None, error=error, replaces=replaces)


async def insert_action(store: Handle, sealer: Sealer, *, user_id: str, run_id: str | None, task_id: str | None,
                        key: str, action: str, args: dict[str, Any], digest: str, status: str, ttl_s: float,
                        decided_by: str | None, replaces: str | None = None) -> Inserted:
    """A new action under ``key``; the existing one when that key was already proposed (a retried step)."""
    action_id = "act_" + uuid.uuid4().hex[:20]
    sealed = seal_args(sealer, action_id=action_id, user_id=user_id, action=action, digest=digest, status=status,
                       args=args)
    now = time.time()
    grp = f"{run_id or 'manual'}:{action}"
    rows = await store.call(
        "write", "INSERT INTO actions (id, user_id, run_id, task_id, action, status, args_hash, ciphertext, nonce, "
                 "key_id, idempotency_key, grp, replaces, created_at, expires_at, decided_by, decided_at, updated_at) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                 f"ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
        [action_id, user_id, run_id, task_id, action, status, digest, sealed.ciphertext, sealed.nonce, sealed.key_id,
         key, grp, replaces, now, now + ttl_s, decided_by, now if decided_by else None, now])
    if rows:
        return Inserted(_view(rows[0], sealer), True)
    rows = await store.call("read", f"SELECT {_COLUMNS} FROM actions WHERE idempotency_key = ?", [key])
    return Inserted(_view(rows[0], sealer), False)


async def get_action(store: Handle, sealer: Sealer, user_id: str, action_id: str) -> ActionView:
    rows = await store.call("read", f"SELECT {_COLUMNS} FROM actions WHERE id = ? AND user_id = ?",
                            [action_id, user_id])
    if not rows:
        raise NotFound(f"no action '{action_id}'")
    return _view(rows[0], sealer)


async def get_actions(store: Handle, sealer: Sealer, user_id: str, action_ids: list[str]) -> list[ActionView]:
    """This user's actions among ``action_ids`` (others' and unknown ids are left out)."""
    if not action_ids:
        return []
    marks = ", ".join("?" * len(action_ids))
    rows = await store.call("read", f"SELECT {_COLUMNS} FROM actions WHERE user_id = ? AND id IN ({marks})",
                            [user_id, *action_ids])
    return [_view(r, sealer) for r in rows]


# Statuses of an action a person (or a policy: see decided_by) let go ahead.
_LET_THROUGH = ("approved", "executing", "done", "failed", "needs_review")


async def known_recipients(store: Handle, sealer: Sealer, user_id: str, since: float | None = None,
                           limit: int = 5000) -> tuple[set[str], float | None]:
    """Keys (``core.recipients.key``) of everyone an earlier action of this user reached or was meant
    to reach, where a *person* approved it — not an "allow" policy: a policy vets no one. The newest
    ``limit`` such actions count; with ``since``, only those decided then or later (a decision only
    ever adds to the set). Also the newest decision's time: the next call's ``since``."""
    marks = ", ".join("?" * len(_LET_THROUGH))
    rows = await store.call(
        "read", "SELECT decided_at, id, action, status, args_hash, ciphertext, nonce, key_id FROM actions "
                f"WHERE user_id = ? AND status IN ({marks}) AND decided_by IS NOT NULL AND decided_by <> 'policy' "
                "AND (? IS NULL OR decided_at >= ?) ORDER BY decided_at DESC LIMIT ?",
        [user_id, *_LET_THROUGH, since, since, limit])
    known: set[str] = set()
    for _, aid, action, status, digest, ct, nonce, kid in rows:
        args, _ = open_args(sealer, action_id=aid, user_id=user_id, action=action, digest=digest, status=status,
                            sealed=Sealed(ct, nonce, kid))
        known.update(key(address) for address, _ in recipients_of(action, args))
    return known, (float(rows[0][0]) if rows else since)


async def list_actions(store: Handle, sealer: Sealer, user_id: str, status: str | None, run_id: str | None,
                       limit: int) -> list[ActionView]:
    where: list[str] = ["user_id = ?"]
    params: list[Any] = [user_id]
    if status == "expired":
        where.append("status = 'pending' AND expires_at <= ?")
        params.append(time.time())
    elif status == "pending":
        where.append("status = 'pending' AND expires_at > ?")
        params.append(time.time())
    elif status is not None:
        where.append("status = ?")
        params.append(status)
    if run_id is not None:
        where.append("run_id = ?")
        params.append(run_id)
    rows = await store.call("read", f"SELECT {_COLUMNS} FROM actions WHERE {' AND '.join(where)} "
                                    "ORDER BY created_at DESC, id LIMIT ?", [*params, limit])
    return [_view(r, sealer) for r in rows]


async def decide(store: Handle, sealer: Sealer, user_id: str, action_id: str, digest: str | None, to: str,
                 who: str, error: str | None = None) -> ActionView:
    """pending → ``to`` for this user, if not expired and (with ``digest``) for exactly these arguments.
    Approving re-seals the arguments under the new decision, in the same conditional UPDATE."""
    now = time.time()
    reseal, reseal_params = await _resealed(store, sealer, user_id, action_id, to)
    rows = await store.call(
        "write", f"UPDATE actions SET status = ?, decided_by = ?, decided_at = ?, error = ?, updated_at = ?{reseal} "
                 "WHERE id = ? AND user_id = ? AND status = 'pending' AND expires_at > ? "
                 f"AND (? IS NULL OR args_hash = ?){' AND nonce = ?' if reseal else ''} RETURNING {_COLUMNS}",
        [to, who, now, error, now, *reseal_params[:3], action_id, user_id, now, digest, digest, *reseal_params[3:]])
    if rows:
        return _view(rows[0], sealer)
    found = await store.call("read", "SELECT user_id, status, expires_at, args_hash FROM actions WHERE id = ?",
                             [action_id])
    if not found or found[0][0] != user_id:
        raise ApprovalRefused(f"no action '{action_id}' awaits your decision", "unknown")
    _, status, expires, stored = found[0]
    if status != "pending":
        raise ApprovalRefused(f"action {action_id} was already decided ({status}): an approval is used once", "used")
    if expires <= now:
        raise ApprovalRefused(f"action {action_id} expired; ask the agent to propose it again", "expired")
    raise ApprovalRefused(f"action {action_id} is not what was approved (its arguments differ from those shown); "
                          "reload and review it again", "mismatch")


async def _resealed(store: Handle, sealer: Sealer, user_id: str, action_id: str, to: str) -> tuple[str, list[Any]]:
    """For a pending action about to become ``to``: the SET clause and values that re-seal its
    arguments under the new decision, then the nonce they were opened from (the UPDATE's guard);
    nothing when the decision does not change or the action is not pending (the UPDATE then refuses)."""
    rows = await store.call("read", "SELECT action, status, args_hash, ciphertext, nonce, key_id FROM actions "
                                    "WHERE id = ? AND user_id = ?", [action_id, user_id])
    if not rows or rows[0][1] != "pending":
        return "", []
    action, status, digest, ct, nonce, kid = rows[0]
    args, legacy = open_args(sealer, action_id=action_id, user_id=user_id, action=action, digest=digest,
                             status=status, sealed=Sealed(ct, nonce, kid))
    if not legacy and (status in LET_THROUGH) == (to in LET_THROUGH):
        return "", []
    sealed = seal_args(sealer, action_id=action_id, user_id=user_id, action=action, digest=digest, status=to,
                       args=args)
    return ", ciphertext = ?, nonce = ?, key_id = ?", [sealed.ciphertext, sealed.nonce, sealed.key_id, nonce]


@dataclass(frozen=True)
class Claimed:
    view: ActionView
    attempts: int  # this one included
    staged: dict[str, Any] | None  # what an earlier attempt staged (a mail's draft)


async def claim(store: Handle, sealer: Sealer, action_id: str) -> Claimed | None:
    """approved → executing (one caller wins); on the first sweep also a row left executing by a crash."""
    now = time.time()
    rows = await store.call(
        "write", "UPDATE actions SET status = 'executing', attempts = attempts + 1, started_at = ?, updated_at = ? "
                 f"WHERE id = ? AND status IN ('approved', 'executing') RETURNING {_COLUMNS}, attempts, staged",
        [now, now, action_id])
    if not rows:
        return None
    *row, attempts, staged = rows[0]
    try:
        view = _view(tuple(row), sealer)
    except (DecryptError, ApprovalRefused) as exc:  # changed under its seal: never carried out
        await finish(store, action_id, "failed", None, f"refused: {exc}")
        return None
    return Claimed(view, int(attempts), json.loads(staged) if staged else None)


async def record_staged(store: Handle, action_id: str, staged: dict[str, Any]) -> None:
    """Ids only (a draft's, a message's): what a retry must look at before doing anything again."""
    rows = await store.call("write", "UPDATE actions SET staged = ?, updated_at = ? WHERE id = ? AND status = 'executing' "
                                     "RETURNING id", [json.dumps(staged), time.time(), action_id])
    if not rows:
        raise NotFound(f"action {action_id} is no longer executing")


async def release(store: Handle, action_id: str, error: str) -> None:
    """executing → approved: it did not happen (Google said so, or needs reconnecting); the sweep retries it."""
    await store.call("write", "UPDATE actions SET status = 'approved', error = ?, updated_at = ? "
                              "WHERE id = ? AND status = 'executing'", [error, time.time(), action_id])


async def finish(store: Handle, action_id: str, status: str, result: dict[str, Any] | None,
                 error: str | None) -> None:
    now = time.time()
    await store.call("write", "UPDATE actions SET status = ?, result = ?, error = ?, finished_at = ?, updated_at = ? "
                              "WHERE id = ? AND status = 'executing'",
                     [status, json.dumps(result) if result is not None else None, error, now, now, action_id])


async def due(store: Handle, include_executing: bool) -> list[str]:
    """Actions to carry out: approved ones (and, right after a start, ones a crash left executing)."""
    states = "('approved', 'executing')" if include_executing else "('approved')"
    rows = await store.call("read", f"SELECT id FROM actions WHERE status IN {states} ORDER BY decided_at LIMIT 500")
    return [str(r[0]) for r in rows]


async def policies(store: Handle, user_id: str) -> dict[str, Policy]:
    rows = await store.call("read", "SELECT action, policy FROM approval_policies WHERE user_id = ?", [user_id])
    saved = {a: p for a, p in rows}
    return {a: cast(Policy, saved.get(a, "ask")) for a in ACTION_TYPES}


async def set_policies(store: Handle, user_id: str, changes: dict[str, Policy]) -> None:
    now = time.time()
    for action, policy in changes.items():
        await store.call("write", "INSERT INTO approval_policies VALUES (?, ?, ?, ?) ON CONFLICT (user_id, action) "
                                  "DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at",
                         [user_id, action, policy, now])


async def audit_entries(store: Handle, user_id: str, run_id: str | None, action: str | None,
                        limit: int) -> list[AuditEntry]:
    where, params = ["(user_id = ? OR user_id IS NULL)"], [user_id]
    if run_id is not None:
        where.append("run_id = ?")
        params.append(run_id)
    if action is not None:
        where.append("action LIKE ?")
        params.append(f"%{action}%")
    rows = await store.call(
        "read", "SELECT id, occurred_at, user_id, actor, action, run_id, task_id, subject_id, approved_by, detail "
                f"FROM audit_log WHERE {' AND '.join(where)} ORDER BY occurred_at DESC LIMIT ?", [*params, limit])
    return [AuditEntry(id=r[0], occurred_at=r[1], user_id=r[2], actor=r[3], action=r[4], run_id=r[5], task_id=r[6],
                       subject_id=r[7], approved_by=r[8], detail=json.loads(r[9] or "{}")) for r in rows]
