"""Caps on what sub-agents propose, checked by the Workspace before it records a proposal.

The rules (README, "No write without a rule"):

- **Caps.** A sub-agent step proposes at most ``max_proposals_per_step`` actions and a run at most
  ``max_proposals_per_run`` (a person's edits do not count). Past a cap the proposal is refused with a
  ToolError the model reads, and nothing is recorded.
- **One proposal per target and step.** Within one step an action type is proposed once per
  *target*, whatever its body says: ``send_email`` per set of recipients (to and cc), ``reply_email``
  per thread, ``create_event`` per attendees and start, ``update_event``/``delete_event`` per event,
  ``create_drive_file`` per title, texts and calls per number. The same proposal again (a retried
  step) gets the first one back; a variant of it (another body, subject, title...) is refused,
  naming the first, which a person can edit.

The target is part of the proposal's idempotency key, so the database's unique key enforces the rule
even between two callers; the count and the insert run under one lock per run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import weakref
from typing import Any

from core.errors import ToolError
from core.storage_schemas import StoredAction
from integrations.actions.store import ActionStore

_DIGITS = re.compile(r"[^\d+]")


def _addresses(*lists: Any) -> list[str]:
    return sorted({str(a).strip().lower() for values in lists for a in (values or []) if str(a).strip()})


def _words(text: Any) -> str:
    return " ".join(str(text or "").lower().split())


def target(action: str, args: dict[str, Any]) -> dict[str, Any]:
    """What makes two proposals of ``action`` in one step the same proposal (see the module's rules)."""
    if action == "send_email":
        return {"to": _addresses(args.get("to"), args.get("cc"))}
    if action == "reply_email":
        return {"thread": args.get("thread_id")}
    if action == "create_event":
        return {"attendees": _addresses(args.get("attendees")), "start": args.get("start")}
    if action in ("update_event", "delete_event"):
        return {"event": args.get("event_id"), "calendar": args.get("calendar_id", "primary")}
    if action == "create_drive_file":
        return {"title": _words(args.get("title"))}
    if action in ("send_text", "place_call"):
        return {"to": _DIGITS.sub("", str(args.get("to", "")))}
    return dict(args)  # an action type without a rule: only identical proposals are one


def proposal_key(idempotency_key: str, action: str, args: dict[str, Any]) -> str:
    """The proposal's idempotency key: the step's key, the action and its target."""
    blob = json.dumps({"action": action, "target": target(action, args)}, sort_keys=True, ensure_ascii=False,
                      default=str)
    return f"{idempotency_key}:{action}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


class ProposalGate:
    """The caps of one Workspace: ``admit`` before recording, under ``lock(run_id)``."""

    def __init__(self, store: ActionStore, per_step: int, per_run: int) -> None:
        self._store = store
        self.per_step = per_step
        self.per_run = per_run
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def lock(self, run_id: str | None) -> asyncio.Lock:
        """One lock per run (kept while someone holds it): counting and recording are one step."""
        name = run_id or ""
        found = self._locks.get(name)
        if found is None:
            found = asyncio.Lock()
            self._locks[name] = found
        return found

    async def admit(self, *, key: str, digest: str, action: str, task_id: str | None, run_id: str | None) -> None:
        """Raise ToolError when this proposal is a variant of one the step made, or past a cap.

        The same proposal again (same key and arguments) is admitted: recording it returns the first.
        """
        earlier: StoredAction | None = await self._store.action_by_key(key)
        if earlier is not None:
            if earlier.args_hash == digest:
                return
            raise ToolError(f"this step already proposed {action} to the same target as action {earlier.id} "
                            f"({earlier.status}); one {action} per target and step, so this one was not recorded. "
                            "Do not propose it again: the user can edit the first one before approving it")
        in_step, in_run = await self._store.proposed_counts(task_id=task_id, run_id=run_id)
        if task_id is not None and in_step >= self.per_step:
            raise ToolError(f"refused: this step already proposed {in_step} actions, the most one step may "
                            "(max_proposals_per_step); nothing was recorded. Finish with what is proposed")
        if run_id is not None and in_run >= self.per_run:
            raise ToolError(f"refused: this run already proposed {in_run} actions, the most one run may "
                            "(max_proposals_per_run); nothing was recorded. Finish with what is proposed")
