"""Audit entries for what stops a run: a person's cancel or a budget reached.

A cancel leaves one ``run.cancelled`` entry (who, why, how many running steps stopped and proposals
withdrawn) and one ``approval.withdrawn`` entry per proposal no one had decided, naming it. Only ids,
counts and the reason go in: never a proposal's text or its recipients.
"""

from __future__ import annotations

import uuid

from core.action_schemas import AuditEntry
from core.schemas import RunCancel

BUDGET = "budget"
PERSON = "person"


def cancel_entries(out: RunCancel, owner: str | None, by: str | None, reason: str, now: float) -> list[AuditEntry]:
    """The entries for a cancel that stopped a run (none when it had already ended): ``owner`` is whose run
    it is, ``by`` the person who cancelled it (None: a budget stopped it)."""
    if not out.cancelled:
        return []
    actor = by if by is not None else "system"
    cause = PERSON if by is not None else BUDGET
    run = AuditEntry(id=uuid.uuid4().hex, occurred_at=now, user_id=owner, actor=actor, action="run.cancelled",
                     run_id=out.run_id, detail={"by": cause, "reason": reason, "stopped_steps": len(out.stopped_steps),
                                                "withdrawn": len(out.withdrawn)})
    return [run, *(AuditEntry(id=uuid.uuid4().hex, occurred_at=now, user_id=owner, actor=actor,
                              action="approval.withdrawn", run_id=out.run_id, subject_id=action_id,
                              detail={"by": cause, "reason": reason}) for action_id in out.withdrawn)]
