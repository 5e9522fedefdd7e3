"""The Workspace's actions, policies and audit log, through the Store's operations
(``actors.storage.actions``: every state change there is conditional, so two callers racing for the
same action, two approvals or two executors, cannot both win).

Arguments are sealed here, where the key is (AES-GCM, bound to the row, user, type, hash and
decision: ``integrations.actions.seal``; approving re-seals them); the Store keeps them sealed. The
summary a person reads is built from them on read and never stored.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

from core.action_schemas import ACTION_TYPES, ActionView, AuditEntry, Policy
from core.crypto import LET_THROUGH, DecryptError, Sealed, Sealer
from core.errors import ApprovalRefused, NotFound
from core.recipients import key, recipients_of
from core.storage_schemas import StoredAction
from integrations.actions.args import args_hash, summary
from integrations.actions.seal import open_args, seal_args
from integrations.actions.store import ActionStore


@dataclass(frozen=True)
class Inserted:
    view: ActionView
    created: bool


def _opened(row: StoredAction, sealer: Sealer) -> tuple[dict[str, Any], bool]:
    """(arguments, sealed the old way); DecryptError when the row was changed under its seal."""
    return open_args(sealer, action_id=row.id, user_id=row.user_id, action=row.action, digest=row.args_hash,
                     status=row.status, sealed=Sealed(row.ciphertext, row.nonce, row.key_id))


def _view(row: StoredAction, sealer: Sealer) -> ActionView:
    args, _ = _opened(row, sealer)
    if args_hash(row.action, args) != row.args_hash:  # cannot happen unless the row was tampered with
        raise ApprovalRefused(f"action {row.id}: its stored arguments do not match their hash", "tampered")
    status = "expired" if row.status == "pending" and row.expires_at <= time.time() else row.status
    return ActionView(id=row.id, action=row.action, status=status, summary=summary(row.action, args), arguments=args,
                      args_hash=row.args_hash, run_id=row.run_id, task_id=row.task_id, user_id=row.user_id,
                      group=row.group, created_at=row.created_at, expires_at=row.expires_at,
                      decided_by=row.decided_by, decided_at=row.decided_at,
                      result=json.loads(row.result) if row.result else None, error=row.error, replaces=row.replaces)


async def insert_action(store: ActionStore, sealer: Sealer, *, user_id: str, run_id: str | None, task_id: str | None,
                        key: str, action: str, args: dict[str, Any], digest: str, status: str, ttl_s: float,
                        decided_by: str | None, replaces: str | None = None) -> Inserted:
    """A new action under ``key``; the existing one when that key was already proposed (a retried step)."""
    action_id = "act_" + uuid.uuid4().hex[:20]
    sealed = seal_args(sealer, action_id=action_id, user_id=user_id, action=action, digest=digest, status=status,
                       args=args)
    now = time.time()
    row = StoredAction(id=action_id, user_id=user_id, run_id=run_id, task_id=task_id, action=action, status=status,
                       args_hash=digest, ciphertext=sealed.ciphertext, nonce=sealed.nonce, key_id=sealed.key_id,
                       idempotency_key=key, group=f"{run_id or 'manual'}:{action}", replaces=replaces, created_at=now,
                       expires_at=now + ttl_s, decided_by=decided_by, decided_at=now if decided_by else None)
    stored, created = await store.insert_action(row)
    return Inserted(_view(stored, sealer), created)


async def get_action(store: ActionStore, sealer: Sealer, user_id: str, action_id: str) -> ActionView:
    rows = await store.get_actions(user_id=user_id, action_ids=[action_id])
    if not rows:
        raise NotFound(f"no action '{action_id}'")
    return _view(rows[0], sealer)


async def get_actions(store: ActionStore, sealer: Sealer, user_id: str, action_ids: list[str]) -> list[ActionView]:
    """This user's actions among ``action_ids`` (others' and unknown ids are left out)."""
    if not action_ids:
        return []
    return [_view(r, sealer) for r in await store.get_actions(user_id=user_id, action_ids=action_ids)]


async def known_recipients(store: ActionStore, sealer: Sealer, user_id: str, since: float | None = None,
                           limit: int = 5000) -> tuple[set[str], float | None]:
    """Keys (``core.recipients.key``) of everyone an earlier action of this user reached or was meant
    to reach, where a *person* approved it — not an "allow" policy: a policy vets no one. The newest
    ``limit`` such actions count; with ``since``, only those decided then or later (a decision only
    ever adds to the set). Also the newest decision's time: the next call's ``since``."""
    rows: list[StoredAction] = await store.actions_let_through(user_id=user_id, since=since, limit=limit)
    known: set[str] = set()
    for row in rows:
        args, _ = _opened(row, sealer)
        known.update(key(address) for address, _ in recipients_of(row.action, args))
    return known, (rows[0].decided_at if rows else since)


async def list_actions(store: ActionStore, sealer: Sealer, user_id: str, status: str | None, run_id: str | None,
                       limit: int) -> list[ActionView]:
    return [_view(r, sealer) for r in await store.list_actions(user_id=user_id, status=status, run_id=run_id, limit=limit)]


async def decide(store: ActionStore, sealer: Sealer, user_id: str, action_id: str, digest: str | None, to: str,
                 who: str, error: str | None = None) -> ActionView:
    """pending → ``to`` for this user, if not expired and (with ``digest``) for exactly these arguments.
    Approving re-seals the arguments under the new decision, in the same conditional UPDATE."""
    resealed = await _resealed(store, sealer, user_id, action_id, to)
    row = await store.decide_action(user_id=user_id, action_id=action_id, digest=digest, to=to, who=who, error=error, resealed=resealed)
    if row is not None:
        return _view(row, sealer)
    found = await store.get_actions(user_id=user_id, action_ids=[action_id])
    if not found:
        raise ApprovalRefused(f"no action '{action_id}' awaits your decision", "unknown")
    now = time.time()
    status, expires = found[0].status, found[0].expires_at
    if status != "pending":
        raise ApprovalRefused(f"action {action_id} was already decided ({status}): an approval is used once", "used")
    if expires <= now:
        raise ApprovalRefused(f"action {action_id} expired; ask the agent to propose it again", "expired")
    raise ApprovalRefused(f"action {action_id} is not what was approved (its arguments differ from those shown); "
                          "reload and review it again", "mismatch")


async def _resealed(store: ActionStore, sealer: Sealer, user_id: str, action_id: str,
                    to: str) -> tuple[Sealed, bytes] | None:
    """For a pending action about to become ``to``: its arguments sealed under the new decision, and
    the nonce they were opened from (the decision's guard); None when the decision does not change
    the seal or the action is not pending (the decision then refuses)."""
    rows: list[StoredAction] = await store.get_actions(user_id=user_id, action_ids=[action_id])
    if not rows or rows[0].status != "pending":
        return None
    row = rows[0]
    args, legacy = _opened(row, sealer)
    if not legacy and (row.status in LET_THROUGH) == (to in LET_THROUGH):
        return None
    sealed = seal_args(sealer, action_id=action_id, user_id=user_id, action=row.action, digest=row.args_hash,
                       status=to, args=args)
    return sealed, row.nonce


@dataclass(frozen=True)
class Claimed:
    view: ActionView
    attempts: int  # this one included
    staged: dict[str, Any] | None  # what an earlier attempt staged (a mail's draft)


async def claim(store: ActionStore, sealer: Sealer, action_id: str) -> Claimed | None:
    """approved → executing (one caller wins); on the first sweep also a row left executing by a crash."""
    row: StoredAction | None = await store.claim_action(action_id)
    if row is None:
        return None
    try:
        view = _view(row, sealer)
    except (DecryptError, ApprovalRefused) as exc:  # changed under its seal: never carried out
        await finish(store, action_id, "failed", None, f"refused: {exc}")
        return None
    return Claimed(view, row.attempts, json.loads(row.staged) if row.staged else None)


async def record_staged(store: ActionStore, action_id: str, staged: dict[str, Any]) -> None:
    """Ids only (a draft's, a message's): what a retry must look at before doing anything again."""
    if not await store.record_staged(action_id=action_id, staged=staged):
        raise NotFound(f"action {action_id} is no longer executing")


async def release(store: ActionStore, action_id: str, error: str) -> None:
    """executing → approved: it did not happen (Google said so, or needs reconnecting); the sweep retries it."""
    await store.release_action(action_id=action_id, error=error)


async def finish(store: ActionStore, action_id: str, status: str, result: dict[str, Any] | None,
                 error: str | None) -> None:
    await store.finish_action(action_id=action_id, status=status, result=result, error=error)


async def due(store: ActionStore, include_executing: bool) -> list[str]:
    """Actions to carry out: approved ones (and, right after a start, ones a crash left executing)."""
    due_ids: list[str] = await store.due_actions(include_executing)
    return due_ids


async def policies(store: ActionStore) -> dict[str, Policy]:
    """The install's policy per action type (one for everyone; unsaved: ask)."""
    saved = await store.policies()
    return {a: cast(Policy, saved.get(a, "ask")) for a in ACTION_TYPES}


async def set_policies(store: ActionStore, changes: dict[str, Policy], who: str) -> None:
    await store.set_policies(changes=dict(changes), who=who)


async def audit(store: ActionStore, user_id: str | None, actor: str, what: str, *, run_id: str | None = None,
                task_id: str | None = None, subject_id: str | None = None, approved_by: str | None = None,
                detail: dict[str, Any] | None = None) -> None:
    await store.record_audit(AuditEntry(
        id=uuid.uuid4().hex, occurred_at=time.time(), user_id=user_id, actor=actor, action=what, run_id=run_id,
        task_id=task_id, subject_id=subject_id, approved_by=approved_by, detail=detail or {}))


async def audit_entries(store: ActionStore, user_id: str | None, run_id: str | None, action: str | None,
                        limit: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = await store.audit_entries(user_id=user_id, run_id=run_id, action=action, limit=limit)
    return entries
