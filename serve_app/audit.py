"""Audit rows the HTTP routes and the CLI write for what a person does: logins and account changes
(:meth:`serve_app.sessions.Accounts.audit`), settings changed (the fields' names, never their values:
a URL may hold a password), documents deleted, memory rebuilt.

Ids, names of fields and counts only; never values, bodies, addresses or secrets. An audit row that
cannot be written is logged and never fails the request.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog

from actors.runtime.apis import StoreApi
from core.action_schemas import AuditEntry

_log = structlog.get_logger("maos.audit")


async def record(store: StoreApi, action: str, user_id: str | None, actor: str, subject_id: str | None = None,
                 **detail: Any) -> None:
    """One audit row: ``action`` (``settings.changed``…) done by ``actor`` for ``user_id`` (whose rows
    these are: a member sees theirs, an admin everyone's)."""
    entry = AuditEntry(id=uuid.uuid4().hex[:16], occurred_at=time.time(), user_id=user_id, actor=actor,
                       action=action, subject_id=subject_id, detail=detail)
    try:
        await store.record_audit(entry=entry)
    except Exception as exc:  # a lost row is logged, never the request's failure
        _log.warning("audit.failed", action=action, error_type=type(exc).__name__)
