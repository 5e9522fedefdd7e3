"""Audit rows of changes the HTTP layer and the CLI make (serve_app.audit): written with who and
what, and a row the Store cannot take never fails the change."""

from __future__ import annotations

import asyncio
from typing import cast

from actors.runtime.apis import MemoryApi, StoreApi
from core.action_schemas import AuditEntry
from serve_app import audit
from serve_app.cli_memory import _rebuild


class _Store:
    def __init__(self, fail: bool = False) -> None:
        self.rows: list[AuditEntry] = []
        self.fail = fail

    async def record_audit(self, entry: AuditEntry) -> None:
        if self.fail:
            raise RuntimeError("the Store is gone")
        self.rows.append(entry)


class _Memory:
    async def rebuild(self) -> dict[str, int]:
        return {"documents": 3, "sops": 1, "conversations": 0, "learnings": 2}


def _store(fake: _Store) -> StoreApi:
    return cast(StoreApi, fake)


def test_a_row_names_who_and_what() -> None:
    store = _Store()
    asyncio.run(audit.record(_store(store), "settings.changed", "u1", "u1", fields=["llm_base_url"]))
    [row] = store.rows
    assert (row.action, row.user_id, row.actor, row.subject_id) == ("settings.changed", "u1", "u1", None)
    assert row.detail == {"fields": ["llm_base_url"]} and row.occurred_at > 0


def test_a_row_the_store_refuses_does_not_fail_the_change() -> None:
    asyncio.run(audit.record(_store(_Store(fail=True)), "document.deleted", "u1", "u1", subject_id="d1", kind="doc"))


def test_the_cli_rebuild_is_audited_with_its_counts() -> None:
    store = _Store()
    counts = asyncio.run(_rebuild(cast(MemoryApi, _Memory()), _store(store), "local"))
    [row] = store.rows
    assert row.action == "memory.rebuilt" and row.user_id == "local" and row.actor == "cli"
    assert row.detail == {"points": counts} and counts["documents"] == 3
